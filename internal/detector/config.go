package detector

import (
	"flag"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// ScoringConfig is when and against what a visitor is scored: what a
// backtest of the detector needs beside the features.
type ScoringConfig struct {
	// RescoreInterval is how often, in event time, a visitor is scored at
	// most: the recency register's interval. 0 scores on every request.
	RescoreInterval time.Duration
	// Threshold, when positive, replaces every baseline's threshold.
	Threshold float64
}

// DefaultScoringConfig is a rescore interval of 30 s and the baselines'
// thresholds.
func DefaultScoringConfig() ScoringConfig {
	return ScoringConfig{RescoreInterval: features.DefaultRescoreInterval}
}

// RegisterFlags registers -rescore-interval and -threshold, with c's
// values as defaults.
func (c *ScoringConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RescoreInterval, "rescore-interval", c.RescoreInterval, "the recency register: score a visitor at most once per this much event time (0 scores on every request)")
	fs.Float64Var(&c.Threshold, "threshold", c.Threshold, "score threshold for every site, replacing the baselines' own (0 keeps theirs)")
}

// Validate reports the first unusable setting, naming its flag.
func (c *ScoringConfig) Validate() error {
	switch {
	case c.RescoreInterval < 0:
		return fmt.Errorf("-rescore-interval must not be negative, got %v", c.RescoreInterval)
	case c.Threshold < 0 || math.IsNaN(c.Threshold) || math.IsInf(c.Threshold, 0):
		return fmt.Errorf("-threshold must be a finite number, 0 or above, got %v", c.Threshold)
	}
	return nil
}

// Config is how the detector batches and scores. The window, identity and
// field map are in features.Config, shared with the baseline service.
type Config struct {
	ScoringConfig
	// Workers is how many visitor shards are processed in parallel, each
	// with its own feature store and recency register.
	Workers int
	// BatchSize and BatchLinger bound a batch: it is processed when it
	// holds BatchSize events or BatchLinger after its first one. Offsets
	// are committed once per batch.
	BatchSize   int
	BatchLinger time.Duration
	// ShutdownTimeout bounds the processing of the batch in hand on
	// shutdown.
	ShutdownTimeout time.Duration
	// EventTime bounds the event times accepted: an event from far ahead
	// would move its visitor's window and recency register past every
	// real request to come.
	EventTime service.EventTimeConfig
}

// DefaultConfig is a rescore interval of 30 s, the baselines' thresholds, a worker per CPU and batches of 5,000 events
// or 200 ms.
func DefaultConfig() Config {
	return Config{
		ScoringConfig:   DefaultScoringConfig(),
		Workers:         runtime.GOMAXPROCS(0),
		BatchSize:       5000,
		BatchLinger:     200 * time.Millisecond,
		ShutdownTimeout: 30 * time.Second,
		EventTime:       service.DefaultEventTimeConfig(),
	}
}

// RegisterFlags registers the config's flags, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.ScoringConfig.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "visitor shards processed in parallel, each with its own feature store (default: one per CPU)")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "most events per batch; offsets are committed once per batch, after its scores are acknowledged and its features written")
	fs.DurationVar(&c.BatchLinger, "batch-linger", c.BatchLinger, "longest a batch waits for more events before it is processed")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "longest the batch in hand may take to finish on shutdown")
	c.EventTime.RegisterFlags(fs, "events")
}

// Validate reports the first unusable setting, naming its flag.
func (c *Config) Validate() error {
	if err := c.ScoringConfig.Validate(); err != nil {
		return err
	}
	switch {
	case c.Workers < 1 || c.Workers > 1024:
		return fmt.Errorf("-workers must be in [1, 1024], got %d", c.Workers)
	case c.BatchSize < 1:
		return fmt.Errorf("-batch-size must be at least 1, got %d", c.BatchSize)
	case c.BatchLinger <= 0:
		return fmt.Errorf("-batch-linger must be positive, got %v", c.BatchLinger)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("-shutdown-timeout must be positive, got %v", c.ShutdownTimeout)
	}
	return c.EventTime.Validate()
}
