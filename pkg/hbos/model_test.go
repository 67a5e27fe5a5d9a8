package hbos

import (
	"errors"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func mustFit(t testing.TB, cols [][]float64, cfg Config) *Model {
	t.Helper()
	m, err := FitColumns(cols, cfg)
	if err != nil {
		t.Fatalf("FitColumns: %v", err)
	}
	return m
}

func mustScore(t testing.TB, m *Model, x ...float64) float64 {
	t.Helper()
	s, err := m.Score(x)
	if err != nil {
		t.Fatalf("Score(%v): %v", x, err)
	}
	return s
}

// Expected values below come from numpy 1.24 and PyOD by hand:
// np.histogram([0, 1, 2, 3, 4, 10], bins=5, density=True) has edges
// [0, 2, 4, 6, 8, 10] and counts [2, 2, 1, 0, 1] (4 sits in [4, 6)).
func TestHistogramMatchesNumpy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bins = 5
	m := mustFit(t, [][]float64{{0, 1, 2, 3, 4, 10}}, cfg)
	edges, density := m.Histogram(0)
	if want := []float64{0, 2, 4, 6, 8, 10}; !slices.Equal(edges, want) {
		t.Errorf("edges = %v, want %v", edges, want)
	}
	counts := []float64{2, 2, 1, 0, 1}
	for i, c := range counts {
		if want := c / 2 / 6; density[i] != want {
			t.Errorf("density[%d] = %v, want %v", i, density[i], want)
		}
	}
}

func TestScoreBinRules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bins = 5
	m := mustFit(t, [][]float64{{0, 1, 2, 3, 4, 10}}, cfg)
	ll := func(count float64) float64 { return -math.Log2(count/2/6 + cfg.Alpha) }
	tests := []struct {
		name string
		x    float64
		want float64
	}{
		{"minimum scores as first bin", 0, ll(2)},
		{"inside first bin", 1.5, ll(2)},
		// digitize(right=True): an inner edge belongs to the bin on its left,
		// unlike np.histogram's counting.
		{"inner edge goes left", 4, ll(2)},
		{"just past inner edge", math.Nextafter(4, 5), ll(1)},
		{"empty bin", 7, ll(0)},
		{"maximum", 10, ll(1)},
		{"below, within tol", -0.5, ll(2)},
		{"below, exactly tol", -1, ll(2)},
		{"below, beyond tol", -1.0001, ll(0)},
		{"above, within tol", 10.5, ll(1)},
		{"above, exactly tol", 11, ll(1)},
		{"above, beyond tol", 11.5, ll(0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustScore(t, m, tc.x); got != tc.want {
				t.Errorf("Score(%v) = %v, want %v", tc.x, got, tc.want)
			}
		})
	}
}

func TestConstantFeatureLikeNumpy(t *testing.T) {
	// numpy widens a constant column to [v-0.5, v+0.5] and bins that.
	cols := [][]float64{{3, 3, 3, 3}, {1, 2, 3, 4}}
	m := mustFit(t, cols, DefaultConfig())
	edges, density := m.Histogram(0)
	if edges[0] != 2.5 || edges[10] != 3.5 {
		t.Fatalf("constant feature edges = %v, want [2.5 ... 3.5]", edges)
	}
	if sum := floatsSum(density) * 0.1; math.Abs(sum-1) > 1e-12 {
		t.Errorf("densities integrate to %v, want 1", sum)
	}
	// Every sample gets the same contribution from the constant feature.
	contrib := make([]float64, 2)
	var first float64
	for i := range 4 {
		if _, err := m.Explain([]float64{cols[0][i], cols[1][i]}, contrib); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = contrib[0]
		} else if contrib[0] != first {
			t.Errorf("sample %d: constant feature contributes %v, sample 0 %v", i, contrib[0], first)
		}
	}
}

func floatsSum(a []float64) float64 {
	s := 0.0
	for _, v := range a {
		s += v
	}
	return s
}

func TestFitErrors(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		fit  func() (*Model, error)
		want error
	}{
		{"no columns", func() (*Model, error) { return FitColumns(nil, DefaultConfig()) }, ErrEmpty},
		{"no samples", func() (*Model, error) { return FitColumns([][]float64{{}}, DefaultConfig()) }, ErrEmpty},
		{"no rows", func() (*Model, error) { return FitRows(nil, DefaultConfig()) }, ErrEmpty},
		{"ragged columns", func() (*Model, error) { return FitColumns([][]float64{{1, 2}, {1}}, DefaultConfig()) }, ErrRagged},
		{"ragged rows", func() (*Model, error) { return FitRows([][]float64{{1, 2}, {1}}, DefaultConfig()) }, ErrRagged},
		{"NaN", func() (*Model, error) { return FitColumns([][]float64{{1, nan}}, DefaultConfig()) }, ErrNonFinite},
		{"Inf", func() (*Model, error) { return FitRows([][]float64{{1}, {inf}}, DefaultConfig()) }, ErrNonFinite},
		{"range overflows", func() (*Model, error) {
			return FitColumns([][]float64{{-math.MaxFloat64, math.MaxFloat64}}, DefaultConfig())
		}, ErrNonFinite},
		{"zero bins", func() (*Model, error) {
			c := DefaultConfig()
			c.Bins = 0
			return FitColumns([][]float64{{1, 2}}, c)
		}, ErrConfig},
		{"alpha zero", func() (*Model, error) {
			c := DefaultConfig()
			c.Alpha = 0
			return FitColumns([][]float64{{1, 2}}, c)
		}, ErrConfig},
		{"negative tol", func() (*Model, error) {
			c := DefaultConfig()
			c.Tol = -1
			return FitColumns([][]float64{{1, 2}}, c)
		}, ErrConfig},
		{"contamination above 0.5", func() (*Model, error) {
			c := DefaultConfig()
			c.Contamination = 0.6
			return FitColumns([][]float64{{1, 2}}, c)
		}, ErrConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.fit()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if m != nil {
				t.Errorf("got a model with error %v", err)
			}
		})
	}
}

func TestScoreErrors(t *testing.T) {
	m := mustFit(t, [][]float64{{1, 2, 3}, {4, 5, 6}}, DefaultConfig())
	tests := []struct {
		name string
		x    []float64
		want error
	}{
		{"too short", []float64{1}, ErrWidth},
		{"too long", []float64{1, 2, 3}, ErrWidth},
		{"nil", nil, ErrWidth},
		{"NaN", []float64{math.NaN(), 5}, ErrNonFinite},
		{"+Inf", []float64{1, math.Inf(1)}, ErrNonFinite},
		{"-Inf", []float64{math.Inf(-1), 5}, ErrNonFinite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Score(tc.x); !errors.Is(err, tc.want) {
				t.Errorf("Score err = %v, want %v", err, tc.want)
			}
			if _, err := m.Predict(tc.x); !errors.Is(err, tc.want) {
				t.Errorf("Predict err = %v, want %v", err, tc.want)
			}
			if _, err := m.Explain(tc.x, make([]float64, 2)); !errors.Is(err, tc.want) {
				t.Errorf("Explain err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := m.Explain([]float64{1, 4}, make([]float64, 1)); !errors.Is(err, ErrWidth) {
		t.Errorf("Explain with a short buffer: err = %v, want ErrWidth", err)
	}
}

func TestRowsAndColumnsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	cols := syntheticColumns(rng, 500, 5)
	rows := make([][]float64, 500)
	for i := range rows {
		for _, c := range cols {
			rows[i] = append(rows[i], c[i])
		}
	}
	for _, cfg := range testConfigs() {
		a := mustFit(t, cols, cfg)
		b, err := FitRows(rows, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows[:50] {
			if sa, sb := mustScore(t, a, r...), mustScore(t, b, r...); sa != sb {
				t.Fatalf("%+v: columns score %v, rows %v", cfg, sa, sb)
			}
		}
		if a.Threshold() != b.Threshold() {
			t.Errorf("%+v: thresholds differ", cfg)
		}
	}
}

func testConfigs() []Config {
	auto, dyn, dynAuto, left := DefaultConfig(), DefaultConfig(), DefaultConfig(), DefaultConfig()
	auto.Bins = AutoBins
	dyn.Dynamic = true
	dynAuto.Dynamic, dynAuto.Bins = true, AutoBins
	left.LeftClosed = true
	return []Config{DefaultConfig(), auto, dyn, dynAuto, left}
}

func TestThresholdIsContaminationPercentile(t *testing.T) {
	// 100 inliers at 0..9 and a far value: with contamination 0.01 the
	// threshold is numpy.percentile(scores, 99), linear between sorted scores.
	col := make([]float64, 0, 101)
	for i := range 100 {
		col = append(col, float64(i%10))
	}
	col = append(col, 1000)
	cfg := DefaultConfig()
	cfg.Contamination = 0.01
	m := mustFit(t, [][]float64{col}, cfg)
	scores := make([]float64, len(col))
	for i, v := range col {
		scores[i] = mustScore(t, m, v)
	}
	slices.Sort(scores)
	// index (101-1)*0.99 = 99: exactly the second largest score.
	if got, want := m.Threshold(), scores[99]; got != want {
		t.Errorf("threshold = %v, want %v", got, want)
	}
	if far, _ := m.Predict([]float64{5000}); !far {
		t.Errorf("Predict(5000), far above the range, = false; score %v threshold %v", mustScore(t, m, 5000), m.Threshold())
	}
}

func TestPercentileLikeNumpy(t *testing.T) {
	a := []float64{4, 1, 3, 2, 5}
	tests := []struct{ q, want float64 }{
		{0, 1}, {100, 5}, {50, 3}, {90, 4.6}, {25, 2}, {10, 1.4},
	}
	for _, tc := range tests {
		if got := percentile(a, tc.q); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestExplainSumsToScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cols := syntheticColumns(rng, 2000, 8)
	for _, cfg := range testConfigs() {
		m := mustFit(t, cols, cfg)
		contrib := make([]float64, 8)
		for i := range 200 {
			x := make([]float64, 8)
			for j := range x {
				x[j] = cols[j][i] * (1 + rng.Float64())
			}
			s, err := m.Explain(x, contrib)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustScore(t, m, x...); s != want {
				t.Fatalf("Explain score %v, Score %v", s, want)
			}
			if sum := floatsSum(contrib); math.Abs(sum-s) > 1e-9 {
				t.Fatalf("contributions sum to %v, score %v", sum, s)
			}
		}
	}
}

func TestOutlierScoresHigher(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cols := syntheticColumns(rng, 5000, 4)
	for _, cfg := range testConfigs() {
		m := mustFit(t, cols, cfg)
		typical := mustScore(t, m, cols[0][0], cols[1][0], cols[2][0], cols[3][0])
		// Far above every feature's range: the emptiest bin everywhere.
		outlier := mustScore(t, m, 1e6, 1e6, 1e6, 1e6)
		if !(outlier > typical) {
			t.Errorf("%+v: outlier %v not above typical %v", cfg, outlier, typical)
		}
		if p, _ := m.Predict([]float64{1e6, 1e6, 1e6, 1e6}); !p {
			t.Errorf("%+v: far outlier not predicted", cfg)
		}
	}
}

func TestDynamicBinsEqualFrequency(t *testing.T) {
	// 1000 values, heavily skewed: equal-frequency bins hold ~100 each.
	rng := rand.New(rand.NewPCG(9, 9))
	col := make([]float64, 1000)
	for i := range col {
		col[i] = rng.ExpFloat64()
	}
	cfg := DefaultConfig()
	cfg.Dynamic = true
	m := mustFit(t, [][]float64{col}, cfg)
	edges, density := m.Histogram(0)
	if len(density) != 10 {
		t.Fatalf("%d dynamic bins, want 10", len(density))
	}
	for i, d := range density {
		count := d * (edges[i+1] - edges[i]) * 1000
		if math.Abs(count-100) > 0.5 {
			t.Errorf("bin %d holds %.1f values, want 100", i, count)
		}
	}
	// Runs of equal values are never split across bins.
	col = append(slices.Repeat([]float64{0}, 500), col[:500]...)
	m = mustFit(t, [][]float64{col}, cfg)
	edges, _ = m.Histogram(0)
	if !(edges[1] > 0) || edges[0] != 0 {
		t.Errorf("run of 500 zeros split: edges %v", edges[:3])
	}
}

func TestAutoBinsSmallSamples(t *testing.T) {
	// With fewer than 4 samples PyOD has no candidate bin count; one bin is
	// the only sane answer.
	cfg := DefaultConfig()
	cfg.Bins = AutoBins
	m := mustFit(t, [][]float64{{1, 2, 3}}, cfg)
	if _, d := m.Histogram(0); len(d) != 1 {
		t.Errorf("auto bins on 3 samples: %d bins, want 1", len(d))
	}
}

func TestNamesAndThreshold(t *testing.T) {
	m := mustFit(t, [][]float64{{1, 2}, {3, 4}}, DefaultConfig())
	if err := m.SetNames([]string{"only one"}); !errors.Is(err, ErrWidth) {
		t.Errorf("SetNames with 1 name for 2 features: err = %v", err)
	}
	if err := m.SetNames([]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if got := m.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Names() = %v", got)
	}
	m.SetThreshold(42)
	if m.Threshold() != 42 || m.Features() != 2 || m.Config() != DefaultConfig() {
		t.Errorf("accessors: threshold %v features %d config %+v", m.Threshold(), m.Features(), m.Config())
	}
}

func TestScoreDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	cols := syntheticColumns(rng, 1000, 16)
	contrib := make([]float64, 16)
	for _, cfg := range testConfigs() {
		m := mustFit(t, cols, cfg)
		x := make([]float64, 16)
		for j := range x {
			x[j] = cols[j][3]
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = m.Score(x) }); n != 0 {
			t.Errorf("%+v: Score allocates %v times", cfg, n)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = m.Explain(x, contrib) }); n != 0 {
			t.Errorf("%+v: Explain allocates %v times", cfg, n)
		}
	}
}

func TestROCAUC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []float64
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{"inverted", []float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}, 0},
		// sklearn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.75
		{"sklearn example", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75},
		// All tied: the diagonal.
		{"ties", []float64{1, 1, 1, 1}, []float64{0, 1, 0, 1}, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ROCAUC(tc.scores, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("ROCAUC = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := ROCAUC([]float64{1, 2}, []float64{0, 0}); err == nil {
		t.Error("one class: no error")
	}
	if _, err := ROCAUC([]float64{1, 2}, []float64{0}); err == nil {
		t.Error("length mismatch: no error")
	}
}

// referenceLogLikelihood is PyOD's per-feature rule written the slow, obvious
// way (_calculate_outlier_scores): digitize(right=True) by binary search,
// then the tolerance rule by distance. The fast table must agree with it on
// every value, including at edges and at the tolerance boundaries. With
// leftClosed, a value on an inner edge belongs to the bin to its right.
func referenceLogLikelihood(edges, density []float64, alpha, tol float64, leftClosed bool, x float64) float64 {
	n := len(density)
	logs := make([]float64, n)
	for i, d := range density {
		logs[i] = math.Log2(d + alpha)
	}
	minLog := slices.Min(logs)
	i, _ := slices.BinarySearch(edges, x) // first edge >= x: digitize(right=True)
	if leftClosed && i > 0 && i < n && edges[i] == x {
		i++
	}
	switch {
	case i == 0:
		if edges[0]-x <= (edges[1]-edges[0])*tol {
			return logs[0]
		}
		return minLog
	case i == n+1:
		if x-edges[n] <= (edges[n]-edges[n-1])*tol {
			return logs[n-1]
		}
		return minLog
	}
	return logs[i-1]
}

func TestScoreMatchesReferenceRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	cols := [][]float64{
		syntheticColumns(rng, 3000, 1)[0],
		{0, 0, 0, 1, 1, 2, 3, 5, 8, 13, 1000},   // counts with a long tail
		{1e-300, 2e-300, 3e-300},                // tiny range
		{-1e15, 1e15, 3},                        // huge range
		{0.1, 0.2, 0.30000000000000004, 0.3, 1}, // neighbours an ulp apart
	}
	for _, cfg := range testConfigs() {
		for _, tol := range []float64{0, 0.5, 3} {
			cfg.Tol = tol
			for c, col := range cols {
				m := mustFit(t, [][]float64{col}, cfg)
				edges, density := m.Histogram(0)
				var probes []float64
				w0, w1 := edges[1]-edges[0], edges[len(edges)-1]-edges[len(edges)-2]
				for _, e := range append(edges, edges[0]-w0*tol, edges[len(edges)-1]+w1*tol) {
					p := e
					for range 3 {
						p = math.Nextafter(p, math.Inf(-1))
					}
					for range 7 {
						probes = append(probes, p)
						p = math.Nextafter(p, math.Inf(1))
					}
				}
				for range 200 {
					probes = append(probes, edges[0]+(rng.Float64()*1.4-0.2)*(edges[len(edges)-1]-edges[0]))
				}
				probes = append(probes, -math.MaxFloat64, math.MaxFloat64, 0)
				for _, x := range probes {
					want := -referenceLogLikelihood(edges, density, cfg.Alpha, tol, cfg.LeftClosed, x)
					if got := mustScore(t, m, x); got != want {
						t.Fatalf("%+v column %d: Score(%v) = %v, PyOD's rules give %v (edges %v)", cfg, c, x, got, want, edges)
					}
				}
			}
		}
	}
}

func TestConfigFlags(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-n-bins", "auto", "-alpha", "0.5", "-tol", "1", "-dynamic", "-left-closed", "-contamination", "0.01"}); err != nil {
		t.Fatal(err)
	}
	want := Config{Bins: AutoBins, Alpha: 0.5, Tol: 1, Contamination: 0.01, Dynamic: true, LeftClosed: true}
	if c != want {
		t.Errorf("config %+v, want %+v", c, want)
	}
	for _, bad := range []string{"0", "-3", "many"} {
		if err := fs.Parse([]string{"-n-bins", bad}); err == nil {
			t.Errorf("-n-bins %s accepted", bad)
		}
	}
}

// TestLeftClosedScoresValuesOnEdgesAsCounted: log1p of small counts lands
// on equal-width edges. PyOD's rule scores such a value with the empty bin
// to its left; LeftClosed scores it with the bin np.histogram counted it in.
func TestLeftClosedScoresValuesOnEdgesAsCounted(t *testing.T) {
	// log1p(0..3): with 10 bins over [0, ln 4], ln 2 is edge 5 exactly.
	var col []float64
	for i, n := range []int{50, 30, 15, 5} {
		for range n {
			col = append(col, math.Log1p(float64(i)))
		}
	}
	edge := math.Log1p(1)
	for _, tc := range []struct {
		leftClosed bool
		want       float64 // -log2(density + alpha) of the bin scored
	}{
		{false, -math.Log2(0 + 0.1)},                    // (e4, e5]: empty
		{true, -math.Log2(0.30/(math.Log(4)/10) + 0.1)}, // [e5, e6): 30 of 100
	} {
		cfg := DefaultConfig()
		cfg.LeftClosed = tc.leftClosed
		m := mustFit(t, [][]float64{col}, cfg)
		edges, _ := m.Histogram(0)
		if edges[5] != edge {
			t.Fatalf("edge 5 = %v, want ln 2 = %v: the test's premise", edges[5], edge)
		}
		if got := mustScore(t, m, edge); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LeftClosed %v: score of ln 2 = %v, want %v", tc.leftClosed, got, tc.want)
		}
		// Off the edges both rules agree.
		other := DefaultConfig()
		other.LeftClosed = !tc.leftClosed
		if a, b := mustScore(t, m, 1.2), mustScore(t, mustFit(t, [][]float64{col}, other), 1.2); a != b {
			t.Errorf("off an edge the rules disagree: %v and %v", a, b)
		}
	}
}
