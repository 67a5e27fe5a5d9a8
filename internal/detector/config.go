package detector

import (
	"flag"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

// ScoringConfig is when and against what a visitor is scored: what a
// backtest of the detector needs beside the features.
type ScoringConfig struct {
	// RescoreInterval is how often, in event time, a visitor is scored at
	// most: the recency register's interval. 0 scores on every request.
	RescoreInterval time.Duration
	// Threshold, when positive, replaces every baseline's threshold.
	Threshold float64
	// ScoreFrom, when set, is the event time before which requests only
	// add to their visitors' windows: a backfill of past traffic warms
	// the windows without scoring it.
	ScoreFrom time.Time
}

// DefaultScoringConfig is a rescore interval of 30 s and the baselines'
// thresholds.
func DefaultScoringConfig() ScoringConfig {
	return ScoringConfig{RescoreInterval: features.DefaultRescoreInterval}
}

// RegisterFlags registers -rescore-interval, -threshold and -score-from,
// with c's values as defaults.
func (c *ScoringConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RescoreInterval, "rescore-interval", c.RescoreInterval, "the recency register: score a visitor at most once per this much event time (0 scores on every request)")
	fs.Float64Var(&c.Threshold, "threshold", c.Threshold, "score threshold for every site, replacing the baselines' own (0 keeps theirs)")
	fs.Var(eventTime{&c.ScoreFrom}, "score-from", "RFC 3339 `time`: requests of event time before it only add to their visitors' windows and are never scored (unscored_total{reason=\"backfill\"}): past traffic replayed to warm the windows, say after losing Redis, without scores or detections for it, nor for it with baselines built on part of it. make demo sets it to the live traffic's start. Unset, every request may be scored")
}

// eventTime is a flag.Value of an RFC 3339 time, empty while unset, so
// that -h shows no zero time as a default.
type eventTime struct{ t *time.Time }

func (e eventTime) String() string {
	if e.t == nil || e.t.IsZero() {
		return ""
	}
	return e.t.UTC().Format(time.RFC3339Nano)
}

func (e eventTime) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is not an RFC 3339 time such as 2026-03-02T10:30:00Z", s)
	}
	*e.t = t
	return nil
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
	// MaxVisitors bounds what the detector keeps in memory, shared out
	// among the workers: per worker, at most its share of visitors in the
	// recency register, of open buckets (the newest minute's) and of
	// closed buckets. Beyond it, state is dropped and read again from
	// Redis when needed (see StoreOptions).
	MaxVisitors int
	// MemoryLimit is the Go runtime's soft memory limit in bytes; 0 sets
	// it from MaxVisitors (MemoryBudget) unless GOMEMLIMIT is set.
	MemoryLimit int64
}

// DefaultMaxVisitors is the default -max-visitors.
const DefaultMaxVisitors = 250_000

// StoreOptions are the Redis store bounds of one worker's share of
// MaxVisitors.
func (c *Config) StoreOptions() featurestore.RedisOptions {
	share := c.MaxVisitors / c.Workers
	return featurestore.RedisOptions{MaxOpen: share, MaxCached: share}
}

// Memory per visitor of MaxVisitors at most (an open and a closed bucket
// of a few requests, about 470 bytes each in their maps, a recency entry
// and a window span, with room for the garbage collector), and for
// everything else: the process, its batches, its baselines.
const (
	bytesPerVisitor = 1536
	baseBytes       = 128 << 20
)

// MemoryBudget is the soft memory limit that MaxVisitors implies: about
// 494 MiB at the default.
func (c *Config) MemoryBudget() int64 {
	return baseBytes + bytesPerVisitor*int64(c.MaxVisitors)
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
		MaxVisitors:     DefaultMaxVisitors,
	}
}

// RegisterFlags registers the config's flags, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.ScoringConfig.RegisterFlags(fs)
	fs.IntVar(&c.Workers, "workers", c.Workers, "visitor shards processed in parallel, each with its own feature store (default: one per CPU)")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "most events per batch; offsets are committed once per batch, after its scores are acknowledged and its features written")
	fs.DurationVar(&c.BatchLinger, "batch-linger", c.BatchLinger, "longest a batch waits for more events before it is processed")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "longest the batch in hand may take to finish on shutdown")
	fs.IntVar(&c.MaxVisitors, "max-visitors", c.MaxVisitors, "visitors whose state the detector keeps in memory (recency register, open and closed buckets), shared among the workers; beyond it state is dropped and read from Redis again when needed, so a flood of new visitors costs Redis reads, not memory")
	fs.Var((*byteSize)(&c.MemoryLimit), "memory-limit", "the Go runtime's soft memory limit, as GOMEMLIMIT writes it (`size`: 512MiB, 1GiB, or bytes); 0 sets it from -max-visitors (128MiB + 1.5KiB a visitor) unless GOMEMLIMIT is set")
	c.EventTime.RegisterFlags(fs, "events")
}

// ScoresLinger is how long the scores topic's writer waits to fill a
// produce request: a batch's records are handed to it at once, so it only
// needs to be short.
const ScoresLinger = 5 * time.Millisecond

// TuneScoresWriter sets w, the scores topic's writer, to take a whole
// batch's records per partition in one produce request (kafka-go's
// default is 100 messages).
func (c *Config) TuneScoresWriter(w *kafka.Writer) {
	w.BatchSize, w.BatchTimeout = c.BatchSize, ScoresLinger
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
	case c.MaxVisitors < 100*c.Workers:
		return fmt.Errorf("-max-visitors must be at least 100 per worker (%d), got %d", 100*c.Workers, c.MaxVisitors)
	case c.MemoryLimit < 0:
		return fmt.Errorf("-memory-limit must not be negative, got %d", c.MemoryLimit)
	}
	return c.EventTime.Validate()
}

// byteSize is a flag of bytes written as GOMEMLIMIT is: a number with an
// optional unit B, KiB, MiB, GiB or TiB.
type byteSize int64

func (b *byteSize) String() string {
	if b == nil || *b == 0 {
		return "0"
	}
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if int64(*b)%(1<<u.shift) == 0 {
			return strconv.FormatInt(int64(*b)>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Set(s string) error {
	num, shift := s, uint(0)
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}} {
		if n, ok := strings.CutSuffix(s, u.name); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64>>shift {
		return fmt.Errorf("%q is not a size such as 512MiB", s)
	}
	*b = byteSize(n << shift)
	return nil
}
