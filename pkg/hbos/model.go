package hbos

import (
	"fmt"
	"math"
	"sort"
)

// Model is a fitted HBOS model: one histogram per feature and the score
// threshold. Score, Predict and Explain are safe for concurrent use; the
// setters are for preparing a model before it is shared.
type Model struct {
	cfg       Config
	hists     []histogram
	names     []string
	threshold float64

	// Derived from hists by prepare, for scoring.
	lookups []lookup
	table   []float64
}

// FitRows fits a model on row-major data: rows[i] is sample i.
func FitRows(rows [][]float64, cfg Config) (*Model, error) {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, ErrEmpty
	}
	d := len(rows[0])
	flat := make([]float64, len(rows)*d)
	cols := make([][]float64, d)
	for j := range cols {
		cols[j] = flat[j*len(rows) : (j+1)*len(rows)]
	}
	for i, r := range rows {
		if len(r) != d {
			return nil, fmt.Errorf("%w: row %d has %d values, row 0 has %d", ErrRagged, i, len(r), d)
		}
		for j, v := range r {
			cols[j][i] = v
		}
	}
	return FitColumns(cols, cfg)
}

// FitColumns fits a model on column-major data: cols[j] holds feature j of
// every sample. It scores the training data once to place the threshold.
func FitColumns(cols [][]float64, cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cols) == 0 || len(cols[0]) == 0 {
		return nil, ErrEmpty
	}
	n := len(cols[0])
	m := &Model{cfg: cfg, hists: make([]histogram, len(cols))}
	for j, col := range cols {
		if len(col) != n {
			return nil, fmt.Errorf("%w: feature %d has %d samples, feature 0 has %d", ErrRagged, j, len(col), n)
		}
		for i, v := range col {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: feature %d, sample %d is %v", ErrNonFinite, j, i, v)
			}
		}
		lo, hi := outerEdges(col)
		if math.IsInf(hi-lo, 0) {
			return nil, fmt.Errorf("%w: feature %d spans [%g, %g], wider than float64 can hold", ErrNonFinite, j, lo, hi)
		}
		bins := cfg.Bins
		if bins == AutoBins {
			bins = birgeRozenblac(col)
		}
		if cfg.Dynamic {
			m.hists[j] = equalFrequency(col, bins)
		} else {
			m.hists[j] = equalWidth(col, bins)
		}
	}
	m.prepare()
	scores := make([]float64, n)
	x := make([]float64, len(cols))
	for i := range scores {
		for j, col := range cols {
			x[j] = col[i]
		}
		scores[i], _ = m.score(x, nil)
	}
	m.threshold = percentile(scores, 100*(1-cfg.Contamination))
	return m, nil
}

// percentile is numpy.percentile with its default linear method.
func percentile(a []float64, q float64) float64 {
	s := append([]float64(nil), a...)
	sort.Float64s(s)
	idx := float64(len(s)-1) * (q / 100)
	lo := math.Floor(idx)
	i := int(lo)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	// numpy's _lerp, which evaluates from the nearer end for stability.
	t := idx - lo
	a0, b0 := s[i], s[i+1]
	diff := b0 - a0
	if t >= 0.5 {
		return b0 - diff*(1-t)
	}
	return a0 + diff*t
}

// Score returns the HBOS outlier score of one sample: minus the sum over
// features of log2(density + alpha), higher is more anomalous. It does not
// allocate. A sample of the wrong width or with a NaN or infinite value is an
// error.
func (m *Model) Score(x []float64) (float64, error) {
	if len(x) != len(m.lookups) {
		return 0, m.widthError(len(x))
	}
	s, ok := m.score(x, nil)
	if !ok {
		return 0, nonFinite(x)
	}
	return s, nil
}

func nonFinite(x []float64) error {
	for j, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: feature %d is %v", ErrNonFinite, j, v)
		}
	}
	return nil
}

// prepare derives the scoring tables from the histograms.
func (m *Model) prepare() {
	m.lookups, m.table = buildTable(m.hists, m.cfg.Alpha, m.cfg.Tol, m.cfg.LeftClosed)
}

// Predict reports whether the sample is an outlier: its score is above the
// threshold.
func (m *Model) Predict(x []float64) (bool, error) {
	s, err := m.Score(x)
	if err != nil {
		return false, err
	}
	return s > m.threshold, nil
}

// Explain scores x and writes each feature's contribution to the score into
// contrib (len(contrib) must equal the number of features); the
// contributions add up to the score. The largest contributions are the
// features that make the sample unusual.
func (m *Model) Explain(x, contrib []float64) (float64, error) {
	if len(contrib) != len(m.lookups) {
		return 0, fmt.Errorf("%w: contributions buffer has %d slots, model has %d features", ErrWidth, len(contrib), len(m.lookups))
	}
	if len(x) != len(m.lookups) {
		return 0, m.widthError(len(x))
	}
	s, ok := m.score(x, contrib)
	if !ok {
		return 0, nonFinite(x)
	}
	return s, nil
}

func (m *Model) widthError(got int) error {
	return fmt.Errorf("%w: sample has %d values, model has %d features", ErrWidth, got, len(m.hists))
}

// Threshold is the score above which a sample is an outlier.
func (m *Model) Threshold() float64 { return m.threshold }

// SetThreshold overrides the threshold, e.g. with an operator's floor.
func (m *Model) SetThreshold(t float64) { m.threshold = t }

// Features is the number of features the model scores.
func (m *Model) Features() int { return len(m.hists) }

// Config is the configuration the model was fitted with.
func (m *Model) Config() Config { return m.cfg }

// Names returns the feature names, or nil when none were set.
func (m *Model) Names() []string { return append([]string(nil), m.names...) }

// SetNames names the features, in order, for explanations and for checking
// that a scorer computes the features the model was fitted on.
func (m *Model) SetNames(names []string) error {
	if len(names) != len(m.hists) {
		return m.widthError(len(names))
	}
	m.names = append([]string(nil), names...)
	return nil
}

// Histogram returns feature j's bin edges and densities (copies), as
// np.histogram(density=True) would return them for equal-width bins.
func (m *Model) Histogram(j int) (edges, density []float64) {
	h := m.hists[j]
	return append([]float64(nil), h.edges...), append([]float64(nil), h.density...)
}
