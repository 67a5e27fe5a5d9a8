package hbos

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
)

// AutoBins as Config.Bins selects the Birge-Rozenblac rule, PyOD's
// n_bins="auto", for each feature separately.
const AutoBins = -1

// Config holds the fitting parameters. The zero value is not valid: start from
// DefaultConfig, which matches PyOD's HBOS() defaults.
type Config struct {
	// Bins per feature, at least 1, or AutoBins.
	Bins int
	// Alpha is added to every density before taking log2, so an empty bin
	// scores a finite value. Must be positive.
	Alpha float64
	// Tol is how far outside the fitted range, in widths of the outermost
	// bin, a value still counts as that bin rather than the emptiest one.
	Tol float64
	// Contamination is the expected share of outliers in the training data;
	// it places the threshold at that upper percentile of training scores.
	Contamination float64
	// Dynamic selects equal-frequency (dynamic-width) bins, as in the
	// original HBOS paper, instead of PyOD's equal-width bins.
	Dynamic bool
	// LeftClosed scores a value in the bin np.histogram counted it in,
	// [a, b), instead of PyOD's numpy.digitize(right=True), (a, b], which
	// puts a value on an inner edge in the bin to its left. The two differ
	// only on edges, but features of small integers (log1p of a count)
	// fall on edges often, and there PyOD's rule scores a common value
	// with a neighbouring, often empty, bin.
	LeftClosed bool
}

// DefaultConfig returns PyOD's defaults: 10 equal-width bins, alpha 0.1,
// tol 0.5, contamination 0.1.
func DefaultConfig() Config {
	return Config{Bins: 10, Alpha: 0.1, Tol: 0.5, Contamination: 0.1}
}

// RegisterFlags registers the fitting parameters as flags (-n-bins, -alpha,
// -tol, -dynamic, -left-closed, -contamination), with c's current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*binsFlag)(&c.Bins), "n-bins", `bins per feature: a number, or "auto" for the Birge-Rozenblac rule`)
	fs.Float64Var(&c.Alpha, "alpha", c.Alpha, "added to each bin's density before log2, so empty bins score finitely")
	fs.Float64Var(&c.Tol, "tol", c.Tol, "values within this many outermost-bin widths outside the training range count as that bin")
	fs.BoolVar(&c.Dynamic, "dynamic", c.Dynamic, "use equal-frequency (dynamic-width) bins instead of equal-width ones")
	fs.BoolVar(&c.LeftClosed, "left-closed", c.LeftClosed, "score a value on a bin edge with the bin above it, where the histogram counted it, instead of PyOD's bin below (matters for features of small counts)")
	fs.Float64Var(&c.Contamination, "contamination", c.Contamination, "expected share of outliers in the training data, in (0, 0.5]; places the score threshold")
}

// binsFlag is Config.Bins as a flag: a positive count or "auto".
type binsFlag int

func (b *binsFlag) String() string {
	if int(*b) == AutoBins {
		return "auto"
	}
	return strconv.Itoa(int(*b))
}

func (b *binsFlag) Set(s string) error {
	if s == "auto" {
		*b = AutoBins
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return errors.New(`want a whole number of at least 1, or "auto"`)
	}
	*b = binsFlag(n)
	return nil
}

// Validate reports the first invalid parameter.
func (c Config) Validate() error {
	switch {
	case c.Bins < 1 && c.Bins != AutoBins:
		return fmt.Errorf("%w: bins must be at least 1 or auto, got %d", ErrConfig, c.Bins)
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		return fmt.Errorf("%w: alpha must be a positive finite number, got %v", ErrConfig, c.Alpha)
	case !(c.Tol >= 0) || math.IsInf(c.Tol, 0):
		return fmt.Errorf("%w: tol must be a non-negative finite number, got %v", ErrConfig, c.Tol)
	case !(c.Contamination > 0 && c.Contamination <= 0.5):
		return fmt.Errorf("%w: contamination must be in (0, 0.5], got %v", ErrConfig, c.Contamination)
	}
	return nil
}

var (
	// ErrConfig is a fitting parameter out of range.
	ErrConfig = errors.New("invalid hbos config")
	// ErrEmpty is a fit on no samples or no features.
	ErrEmpty = errors.New("empty training data")
	// ErrRagged is a matrix whose rows (or columns) differ in length.
	ErrRagged = errors.New("ragged matrix")
	// ErrNonFinite is a NaN or infinite value in training data or a sample.
	ErrNonFinite = errors.New("non-finite value")
	// ErrWidth is a sample whose length differs from the model's features.
	ErrWidth = errors.New("wrong number of features")
	// ErrEncoding is a corrupt or unsupported encoded model.
	ErrEncoding = errors.New("invalid encoded hbos model")
)
