package hbos

import "math"

// lookup is one feature's entry point into Model.table, derived from its
// histogram: 32 bytes, so two features share a cache line.
type lookup struct {
	lo    float64 // first edge
	scale float64 // bins / (last edge - first edge): the O(1) bin guess
	base  int     // index of the feature's first (lower edge, value) pair
	top   int     // bins + 1: the index of the last pair, above the range
}

// buildTable lays every feature out as right-closed intervals that cover the
// whole real line, each stored as a (lower edge, log-likelihood) pair:
//
//	pair 0       [-Inf, below]     minLog: too far below the range
//	pair 1       (below, e1]       log2(density[0] + alpha)
//	pair k       (e[k-1], e[k]]    log2(density[k-1] + alpha), k = 2..bins
//	pair bins+1  (above, +Inf)     minLog: too far above the range
//	sentinel     lower edge +Inf
//
// "below" and "above" are where PyOD's tolerance rule (the distance to the
// first or last edge, at most tol bin widths) stops holding, found to the ulp,
// so that one interval lookup reproduces digitize(right=True) and the
// tolerance rule exactly, with no special case in the scoring loop. Pair 0's
// lower edge is stored as NaN and the sentinel's as +Inf: no value compares
// past either, so they bound the lookup's walks without index checks, even
// for NaN and ±Inf.
//
// With leftClosed, each inner edge is lowered by one ulp, which turns the
// intervals into [e[k-1], e[k]): a value on an inner edge then scores with
// the bin to its right, the one np.histogram counted it in.
func buildTable(hists []histogram, alpha, tol float64, leftClosed bool) ([]lookup, []float64) {
	size := 0
	for _, h := range hists {
		size += 2 * (len(h.density) + 3)
	}
	table := make([]float64, 0, size)
	lookups := make([]lookup, len(hists))
	for j, h := range hists {
		n := len(h.density)
		lo, hi := h.edges[0], h.edges[n]
		logs := make([]float64, n)
		minLog := math.Inf(1)
		for i, d := range h.density {
			logs[i] = math.Log2(d + alpha)
			minLog = math.Min(minLog, logs[i])
		}
		lookups[j] = lookup{lo: lo, scale: float64(n) / (hi - lo), base: len(table), top: n + 1}
		table = append(table, math.NaN(), minLog)
		table = append(table, belowTolerance(lo, (h.edges[1]-lo)*tol), logs[0])
		for i := 1; i < n; i++ {
			e := h.edges[i]
			if leftClosed {
				e = math.Nextafter(e, math.Inf(-1))
			}
			table = append(table, e, logs[i])
		}
		table = append(table, aboveTolerance(hi, (hi-h.edges[n-1])*tol), minLog)
		table = append(table, math.Inf(1), 0)
	}
	return lookups, table
}

// belowTolerance returns the largest x for which PyOD's rule for values below
// the first edge, lo - x <= tolerance, fails (-Inf if no finite x fails). The
// rule holds on (belowTolerance, lo].
func belowTolerance(lo, tolerance float64) float64 {
	fails := func(x float64) bool { return !(lo-x <= tolerance) }
	if !fails(-math.MaxFloat64) {
		return math.Inf(-1)
	}
	return lastTrue(-math.MaxFloat64, lo, fails)
}

// aboveTolerance returns the largest x for which PyOD's rule for values above
// the last edge, x - hi <= tolerance, holds (+Inf if it holds for every
// finite x).
func aboveTolerance(hi, tolerance float64) float64 {
	holds := func(x float64) bool { return x-hi <= tolerance }
	if holds(math.MaxFloat64) {
		return math.Inf(1)
	}
	return lastTrue(hi, math.MaxFloat64, holds)
}

// lastTrue returns the largest float64 x in [a, b) with p(x), for p true at a,
// false at b and monotone in between: a bisection over the floats' ordering,
// so the boundary is exact to the ulp whatever the rounding did.
func lastTrue(a, b float64, p func(float64) bool) float64 {
	ka, kb := orderedKey(a), orderedKey(b)
	// The span of keys can exceed MaxInt64; unsigned arithmetic holds it.
	for uint64(kb)-uint64(ka) > 1 {
		mid := ka + int64((uint64(kb)-uint64(ka))/2)
		if p(fromOrderedKey(mid)) {
			ka = mid
		} else {
			kb = mid
		}
	}
	return fromOrderedKey(ka)
}

// orderedKey maps a float64 to an int64 with the same order (for non-NaN
// values; -0 and +0 map next to each other).
func orderedKey(f float64) int64 {
	k := int64(math.Float64bits(f))
	if k < 0 {
		k = math.MinInt64 - k
	}
	return k
}

func fromOrderedKey(k int64) float64 {
	if k < 0 {
		k = math.MinInt64 - k
	}
	return math.Float64frombits(uint64(k))
}

// score sums minus log2(density + alpha) of the interval each feature of x
// falls in, and writes each term to contrib unless it is nil. ok is false
// when x holds a NaN or an infinity.
//
// This is the detector's per-visitor hot path: no calls, so the loop state
// stays in registers, and only well-predicted branches.
// For equal-width bins the scaled guess lands in the right interval except
// next to an edge, where the edges decide, as numpy's do; dynamic-width bins
// walk from the same proportional guess. int() truncates towards zero, so a
// value a little below lo guesses pair 1 and walks down if it must; NaN and
// huge values guess nonsense, which the clamp bounds.
func (m *Model) score(x, contrib []float64) (s float64, ok bool) {
	lookups, table := m.lookups, m.table
	x = x[:len(lookups)]
	nonFinite := 0.0
	for j := range lookups {
		l, v := &lookups[j], x[j]
		k := l.base + 2*max(0, min(int((v-l.lo)*l.scale)+1, l.top))
		for v <= table[k] {
			k -= 2
		}
		for v > table[k+2] {
			k += 2
		}
		ll := table[k+1]
		if contrib != nil {
			contrib[j] = -ll
		}
		s -= ll
		nonFinite += v * 0 // NaN for NaN and ±Inf, else zero
	}
	return s, nonFinite == 0
}
