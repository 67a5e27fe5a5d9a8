// Package hbos implements Histogram-Based Outlier Scoring (Goldstein and
// Dengel, 2012) for streaming use: fit per-feature histograms on a baseline,
// then score one sample at a time in a few nanoseconds per feature, without
// allocating, and explain which features made a sample unusual.
//
// # Semantics
//
// Fitting and scoring reproduce PyOD's HBOS (pyod/models/hbos.py) to the last
// few ulps, so a model fitted here scores like one fitted in Python:
//
//   - Equal-width bins are numpy.histogram's: edges from numpy.linspace over
//     [min, max] (a constant feature gets [v-0.5, v+0.5]), values counted
//     into [a, b) bins with the last one closed, heights as densities.
//   - A sample's bin is numpy.digitize(x, edges, right=True): (a, b], so a
//     value on an inner edge scores with the bin to its left.
//   - Each feature contributes -log2(density + Alpha). Outside the fitted
//     range a value scores as the outermost bin if it lies within Tol widths
//     of that bin, else as the emptiest bin.
//   - The score is the sum of the contributions; higher is more anomalous.
//     The threshold is numpy.percentile of the training scores at
//     100*(1-Contamination), linearly interpolated.
//   - Bins: AutoBins picks each feature's count with PyOD's Birge-Rozenblac
//     loop (get_optimal_n_bins).
//
// Config.Dynamic selects the original paper's dynamic-width bins instead:
// each bin holds about n/Bins consecutive sorted values, runs of equal values
// are not split, and inner edges sit halfway between neighbouring values.
// Scoring rules are the same.
//
// Config.LeftClosed departs from PyOD on purpose: a value on an inner edge
// scores with the bin to its right, where np.histogram counted it. PyOD's
// rule scores it with the bin to its left, which for features of small
// integers (log1p of a count, whose values often fall on equal-width edges)
// can be an empty bin and makes a common value look rare.
//
// PyOD's decision_function recomputes the Birge-Rozenblac count on the
// scored data to detect values above the range; this package uses the
// fitted bins throughout, which is what PyOD means and gives the same
// scores on the training data.
//
// # Speed
//
// Score looks a value's bin up in O(1) for equal-width bins: a scaled guess
// that the edges then confirm, so the result is exactly digitize's. Every
// feature's (edge, log-density) pairs sit in one flat array built at fit or
// decode time. Dynamic bins walk from the same guess, O(bins) at worst.
//
// # Encoding
//
// MarshalBinary and UnmarshalBinary ship models between services in a
// versioned, checksummed format (see encoding.go). Decoding validates every
// length and value before use, so corrupt input is an error, never a panic
// or an allocation larger than the input.
package hbos
