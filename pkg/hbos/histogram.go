package hbos

import (
	"math"
	"sort"
)

// histogram is one feature's fitted histogram, as np.histogram(density=True)
// returns it for equal-width bins.
type histogram struct {
	edges   []float64 // len(density)+1, strictly increasing
	density []float64
}

// outerEdges is numpy's _get_outer_edges without a range: min and max, widened
// by 0.5 each way for a constant feature.
func outerEdges(x []float64) (lo, hi float64) {
	lo, hi = x[0], x[0]
	for _, v := range x[1:] {
		// Plain comparisons: the samples are finite (FitColumns checks),
		// so math.Min and Max's cases for NaN and the sign of zero, which
		// took most of a fit's time, change nothing but a zero edge's sign.
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	if lo == hi {
		lo -= 0.5
		hi += 0.5
	}
	return lo, hi
}

// linspace reproduces numpy.linspace(lo, hi, bins+1) bit for bit: i*step + lo,
// with the last edge set to hi exactly.
func linspace(lo, hi float64, bins int) []float64 {
	edges := make([]float64, bins+1)
	step := (hi - lo) / float64(bins)
	for i := range edges {
		if step == 0 {
			// numpy's denormal path: divide first, then scale.
			edges[i] = float64(i)/float64(bins)*(hi-lo) + lo
		} else {
			edges[i] = float64(i)*step + lo
		}
	}
	edges[bins] = hi
	return edges
}

// equalWidthCounts counts x into bins of equal width the way numpy.histogram
// does for uniform bins: a scaled index, corrected by one against the edges;
// bins are [a, b) but the last one is closed.
func equalWidthCounts(x, edges []float64, counts []int) {
	bins := len(counts)
	lo, hi := edges[0], edges[bins]
	norm := hi - lo
	for _, v := range x {
		i := int((v - lo) / norm * float64(bins))
		if i == bins {
			i--
		}
		if v < edges[i] {
			i--
		} else if v >= edges[i+1] && i != bins-1 {
			i++
		}
		counts[i]++
	}
}

// equalWidth is np.histogram(x, bins, density=True).
func equalWidth(x []float64, bins int) histogram {
	lo, hi := outerEdges(x)
	edges := linspace(lo, hi, bins)
	counts := make([]int, bins)
	equalWidthCounts(x, edges, counts)
	return histogram{edges: edges, density: densities(counts, edges, len(x))}
}

// densities is numpy's n / diff(edges) / n.sum(), in that order of operations.
func densities(counts []int, edges []float64, total int) []float64 {
	d := make([]float64, len(counts))
	for i, c := range counts {
		d[i] = float64(c) / (edges[i+1] - edges[i]) / float64(total)
	}
	return d
}

// birgeRozenblac picks the number of equal-width bins as PyOD's
// get_optimal_n_bins does: for b in 1..int(sqrt(n))-1, maximise
// sum_i(hist_i*log(b*hist_i/n + 1) - (b - 1 + log(b)^2.5)) over the b raw bin
// counts (the penalty sits inside the sum, as in PyOD), first maximum wins.
func birgeRozenblac(x []float64) int {
	n := len(x)
	upper := int(math.Sqrt(float64(n)))
	lo, hi := outerEdges(x)
	best, bestL := 1, math.Inf(-1)
	terms := make([]float64, 0, upper)
	counts := make([]int, upper)
	for b := 1; b < upper; b++ {
		edges := linspace(lo, hi, b)
		c := counts[:b]
		clear(c)
		equalWidthCounts(x, edges, c)
		penalty := float64(b) - 1 + math.Pow(math.Log(float64(b)), 2.5)
		terms = terms[:0]
		for _, h := range c {
			hf := float64(h)
			terms = append(terms, hf*math.Log(float64(b*h)/float64(n)+1)-penalty)
		}
		if l := pairwiseSum(terms); l > bestL {
			best, bestL = b, l
		}
	}
	return best
}

// pairwiseSum is numpy's float64 add.reduce: eight interleaved accumulators
// for short runs, halving recursion for long ones. Matching it keeps the
// Birge-Rozenblac argmax identical to PyOD's on near ties.
func pairwiseSum(a []float64) float64 {
	const block = 128
	n := len(a)
	switch {
	case n < 8:
		s := 0.0
		for _, v := range a {
			s += v
		}
		return s
	case n <= block:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range r {
				r[j] += a[i+j]
			}
		}
		s := (r[0] + r[1]) + (r[2] + r[3]) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	default:
		h := n / 2
		h -= h % 8
		return pairwiseSum(a[:h]) + pairwiseSum(a[h:])
	}
}

// equalFrequency builds the dynamic-width histogram of Goldstein and Dengel
// (2012): each bin holds about n/bins consecutive sorted values, a run of equal
// values is never split, and an inner edge sits halfway between the last value
// of one bin and the first of the next, so every bin has a positive width.
func equalFrequency(x []float64, bins int) histogram {
	sorted := append([]float64(nil), x...)
	sort.Float64s(sorted)
	n := len(sorted)
	if sorted[0] == sorted[n-1] {
		// A constant feature: one bin over numpy's widened range.
		lo, hi := outerEdges(sorted)
		edges := []float64{lo, hi}
		return histogram{edges: edges, density: densities([]int{n}, edges, n)}
	}
	per := max(1, n/bins)
	edges := []float64{sorted[0]}
	var counts []int
	pending := 0
	for start := 0; start < n; {
		end := min(start+per, n)
		for end < n && sorted[end] == sorted[end-1] {
			end++
		}
		// Fold a short tail into the previous bin rather than leave a sliver.
		if n-end < per/2 {
			end = n
		}
		pending += end - start
		edge := sorted[n-1]
		if end < n {
			edge = sorted[end-1] + (sorted[end]-sorted[end-1])/2
		}
		// Between adjacent floats the midpoint can round onto the previous
		// edge; the run then joins the next bin instead of making one of
		// zero width.
		if edge > edges[len(edges)-1] {
			edges = append(edges, edge)
			counts = append(counts, pending)
			pending = 0
		}
		start = end
	}
	if pending > 0 {
		// The last edge collapsed onto the one before: the values sit on it,
		// inside the last bin.
		counts[len(counts)-1] += pending
	}
	return histogram{edges: edges, density: densities(counts, edges, n)}
}
