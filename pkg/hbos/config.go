package hbos

import (
	"errors"
	"fmt"
	"math"
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
}

// DefaultConfig returns PyOD's defaults: 10 equal-width bins, alpha 0.1,
// tol 0.5, contamination 0.1.
func DefaultConfig() Config {
	return Config{Bins: 10, Alpha: 0.1, Tol: 0.5, Contamination: 0.1}
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
