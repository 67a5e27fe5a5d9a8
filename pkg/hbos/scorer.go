package hbos

import "math"

// lookup is one feature's scoring table, derived from its histogram. The
// fields of the in-range path come first and the whole struct is one cache
// line, so a sample's features touch few lines.
type lookup struct {
	lo, hi float64 // first and last edge
	scale  float64 // bins / (hi - lo): the O(1) guess for equal-width bins
	base   int     // where this feature's bins start in Model.bins
	last   int     // bins - 1

	tolLow  float64 // tol * width of the first bin (PyOD compares distances with it)
	tolHigh float64 // tol * width of the last bin
	minLog  float64 // the smallest log-density: a far outlier's value
}

// buildLookups lays out every feature's bins in one array: bin i of a feature
// at base+2i is (edges[i], log2(density[i] + alpha)), and the last edge
// follows its last bin, so a lookup reads one or two adjacent cache lines.
func buildLookups(hists []histogram, alpha, tol float64) ([]lookup, []float64) {
	size := 0
	for _, h := range hists {
		size += 2*len(h.density) + 1
	}
	bins := make([]float64, 0, size)
	lookups := make([]lookup, len(hists))
	for j, h := range hists {
		n := len(h.density)
		l := lookup{
			lo:      h.edges[0],
			hi:      h.edges[n],
			scale:   float64(n) / (h.edges[n] - h.edges[0]),
			base:    len(bins),
			last:    n - 1,
			tolLow:  (h.edges[1] - h.edges[0]) * tol,
			tolHigh: (h.edges[n] - h.edges[n-1]) * tol,
			minLog:  math.Inf(1),
		}
		for i, d := range h.density {
			logDensity := math.Log2(d + alpha)
			l.minLog = math.Min(l.minLog, logDensity)
			bins = append(bins, h.edges[i], logDensity)
		}
		bins = append(bins, h.edges[n])
		lookups[j] = l
	}
	return lookups, bins
}

// score sums minus log2(density + alpha) of the bin each feature of x falls
// in, and writes each term to contrib unless it is nil. PyOD's rules: bins are
// right-closed, (edges[i], edges[i+1]], as numpy.digitize(right=True) assigns
// them; a value outside the fitted range counts as the outermost bin within
// tol bin widths, else as the emptiest bin. ok is false for NaN and ±Inf.
//
// This is the detector's per-visitor hot path. The loop has no call in it, so
// the compiler keeps its state in registers; the first value outside its
// range hands the rest of the sample to scoreFrom.
func (m *Model) score(x, contrib []float64) (s float64, ok bool) {
	bins := m.bins
	for j, v := range x[:len(m.lookups)] {
		l := &m.lookups[j]
		if !(v >= l.lo && v <= l.hi) {
			return m.scoreFrom(j, s, x, contrib)
		}
		ll := l.inRange(bins, v)
		if contrib != nil {
			contrib[j] = -ll
		}
		s -= ll
	}
	return s, true
}

// scoreFrom is score from feature j on, with s the sum so far, for samples
// with values outside the fitted range.
func (m *Model) scoreFrom(j int, s float64, x, contrib []float64) (float64, bool) {
	for ; j < len(m.lookups); j++ {
		l, v := &m.lookups[j], x[j]
		var ll float64
		switch {
		case v >= l.lo && v <= l.hi:
			ll = l.inRange(m.bins, v)
		case v-v != 0: // NaN or ±Inf
			return 0, false
		case v < l.lo && l.lo-v <= l.tolLow:
			ll = m.bins[l.base+1]
		case v > l.hi && v-l.hi <= l.tolHigh:
			ll = m.bins[l.base+2*l.last+1]
		default:
			ll = l.minLog
		}
		if contrib != nil {
			contrib[j] = -ll
		}
		s -= ll
	}
	return s, true
}

// inRange is the log-density of the bin holding v, for lo <= v <= hi.
// Equal-width bins: the scaled guess is right except where rounding lands it
// next to an edge, and then the edges decide, as in numpy. Dynamic bins walk
// from the same proportional guess. The clamp covers a scale that overflowed
// on a subnormal range. The minimum itself stays in bin 0: digitize puts it
// below the first edge, at distance 0, which PyOD scores as bin 0.
func (l *lookup) inRange(bins []float64, v float64) float64 {
	k := l.base + 2*max(0, min(int((v-l.lo)*l.scale), l.last))
	for k > l.base && v <= bins[k] {
		k -= 2
	}
	for v > bins[k+2] {
		k += 2
	}
	return bins[k+1]
}
