package publisher

import (
	"flag"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/service"
)

// Config is the publisher's storage and batching settings, and how it
// selects detections.
type Config struct {
	// Table is the ClickHouse scores table, created if missing.
	Table string
	// Cluster is the ClickHouse cluster of the scores table
	// (-clickhouse-cluster), "" for one server.
	Cluster string
	// BatchSize and Linger bound a batch of scores: it is processed when it
	// holds BatchSize messages or Linger after its first one, whichever is
	// first. One batch is one ClickHouse insert, one write of detections
	// and one offset commit; ClickHouse wants few, large inserts.
	BatchSize int
	Linger    time.Duration
	// Retention is how much score history is kept, counted back from the
	// newest score (but no later than EventTime allows); older daily
	// partitions are dropped.
	Retention time.Duration
	// EventTime bounds the scored_at times accepted. Event time drives
	// retention, detection expiry and what the selector forgets: one record
	// from decades ahead would drop every partition and every visitor's
	// state and publish a detection that never expires.
	EventTime service.EventTimeConfig
	// ShutdownTimeout bounds the flush of the last batch on shutdown.
	ShutdownTimeout time.Duration
	// DetectionBatchSize and DetectionLinger configure the detections
	// topic's writer (kafka-go Writer BatchSize and BatchTimeout).
	DetectionBatchSize int
	DetectionLinger    time.Duration
	// Select is how detections are chosen among the scores.
	Select SelectConfig
}

// SelectConfig is how detections are chosen and de-duplicated; see
// Selector for the rules. Times are event time.
type SelectConfig struct {
	TTL     time.Duration // how long a detection lasts at the edge
	MinHits int           // hits within TTL needed before a first detection
	// EarlyHitMargin is how far above its threshold a visit's beginning
	// (an early record) must score to count as a hit.
	EarlyHitMargin float64
	MinMargin      float64 // how far above its threshold a score must be to hit
	UsualStart     float64 // share of a site's visits a window's shape may begin before it cannot hit
	RiseMargin     float64 // score rise over the last published that republishes early
	Top            int     // contributions a detection carries
	MaxTracked     int     // visitors whose state is kept at most
	// GroupMin and GroupShare say when visitors that are outliers in the
	// same way at once are a coordinated attack (see groups); GroupMin 0
	// looks for none.
	GroupMin       int
	GroupShare     float64
	GroupReturning float64
	GroupRarity    float64
	// CrowdRatio, CrowdChance and CrowdExpected say when
	// visitors whose visits begin alike are a coordinated attack (see
	// crowds); CrowdRatio 0 looks for none.
	CrowdRatio  float64
	CrowdChance float64
	// CrowdExpected bounds the members a crowd's share would bring: the
	// site's people expected among them, published with the attack.
	CrowdExpected float64
	// RevokeAfter is how many scores in a row below the threshold revoke
	// a live detection made on the visitor's own evidence; 0 never.
	RevokeAfter int
	// PublishKnownPrograms publishes returning visitors of the api class
	// on their own hits, which by default it does not (see Selector).
	PublishKnownPrograms bool
}

// Defaults.
const (
	DefaultBatchSize          = 10_000
	DefaultLinger             = time.Second
	DefaultRetention          = 14 * 24 * time.Hour
	DefaultShutdownTimeout    = 30 * time.Second
	DefaultDetectionBatchSize = 1000
	DefaultDetectionLinger    = 5 * time.Millisecond
	DefaultTTL                = 10 * time.Minute
	DefaultMinHits            = 3
	DefaultEarlyHitMargin     = 20
	DefaultMinMargin          = 0
	DefaultUsualStart         = 0.005
	DefaultRiseMargin         = 1.0
	DefaultTop                = 3
	DefaultMaxTracked         = 1_000_000
	DefaultGroupMin           = 10
	DefaultGroupShare         = 0.02
	DefaultGroupReturning     = 0.5
	DefaultGroupRarity        = 10
	DefaultCrowdRatio         = 10
	DefaultCrowdChance        = 1e-9
	DefaultCrowdExpected      = 4
	DefaultRevokeAfter        = 2
)

// Limits that keep the per-visitor state and the records small.
const (
	maxMinHits = 100
	maxTop     = 64
)

// DefaultConfig returns the defaults, explained in RegisterFlags.
func DefaultConfig() Config {
	return Config{
		Table: "scores", BatchSize: DefaultBatchSize, Linger: DefaultLinger, Retention: DefaultRetention,
		EventTime:       service.EventTimeConfig{MaxAhead: service.DefaultMaxEventAhead, MaxAge: DefaultRetention},
		ShutdownTimeout: DefaultShutdownTimeout, DetectionBatchSize: DefaultDetectionBatchSize,
		DetectionLinger: DefaultDetectionLinger, Select: DefaultSelectConfig(),
	}
}

// DefaultSelectConfig returns the default selection settings.
func DefaultSelectConfig() SelectConfig {
	return SelectConfig{
		TTL: DefaultTTL, MinHits: DefaultMinHits, EarlyHitMargin: DefaultEarlyHitMargin, MinMargin: DefaultMinMargin, UsualStart: DefaultUsualStart,
		RiseMargin: DefaultRiseMargin, Top: DefaultTop, MaxTracked: DefaultMaxTracked,
		GroupMin: DefaultGroupMin, GroupShare: DefaultGroupShare, GroupReturning: DefaultGroupReturning,
		GroupRarity: DefaultGroupRarity, CrowdRatio: DefaultCrowdRatio, CrowdChance: DefaultCrowdChance,
		CrowdExpected: DefaultCrowdExpected, RevokeAfter: DefaultRevokeAfter,
	}
}

// RegisterFlags registers the publisher's flags, with c's values as
// defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Table, "scores-table", c.Table, "ClickHouse table of every score, created if missing")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "most scores per batch: one ClickHouse insert, one write of detections and one offset commit each")
	fs.DurationVar(&c.Linger, "batch-linger", c.Linger, "longest a batch waits for more scores; it bounds how late a detection reaches the edge")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how much score history is kept, counted back from the newest score (at most -max-event-ahead past the clock); older daily partitions are dropped. Two weeks by default: enough to compare a week with the one before when tuning thresholds")
	c.EventTime.RegisterFlags(fs, "score records whose scored_at is")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "longest the last batch may take to flush and commit on shutdown")
	fs.IntVar(&c.DetectionBatchSize, "detections-batch-size", c.DetectionBatchSize, "most detections per Kafka produce request")
	fs.DurationVar(&c.DetectionLinger, "detections-linger", c.DetectionLinger, "longest the Kafka writer waits to fill a produce request of detections; a batch's detections are handed over at once, so this only needs to be short (kafka-go's own default, 1s, would delay every batch)")
	c.Select.RegisterFlags(fs)
}

// RegisterFlags registers the selection flags, with c's values as
// defaults.
func (c *SelectConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.TTL, "detection-ttl", c.TTL, "how long the edge acts on a detection (expires_at = detected_at + TTL, in event time); within it a visitor is not published again unless its score rises by -rise-margin. Ten minutes is the detector's default window: a bot that stops is released about when its evidence has left the window")
	fs.IntVar(&c.MinHits, "min-hits", c.MinHits, fmt.Sprintf("scores above the threshold (by -min-margin) a visitor needs within -detection-ttl before it is first published, at most %d. The default 3 demands repeated evidence: bots stay outliers score after score, while most people above the threshold are there once; it delays a first detection by two rescore intervals", maxMinHits))
	fs.Float64Var(&c.EarlyHitMargin, "early-hit-margin", c.EarlyHitMargin, "a visit's beginning (its record at the baseline's -early-requests) that scores at least this many bits above the early model's threshold counts as one of the visitor's -min-hits. The default 20 is a beginning a million times less likely than the threshold's, as a scanner's first probes are, all failing, without a referer: its word list is done before it is scored three times. People's beginnings stay far below it; 'inf' counts none")
	fs.Float64Var(&c.MinMargin, "min-margin", c.MinMargin, "how far above the threshold a score must be to count, in HBOS score units (bits: +1 is a window half as likely under the baseline). The default 0 takes the threshold as it is")
	fs.Float64Var(&c.UsualStart, "usual-start", c.UsualStart, "a score above the threshold is no hit when at least this share of the site's visits in the baseline's history began in its window's shape (the score record's shape_share): the baseline learned whole windows, and a visit's first requests (a page and some of its files) can fall in bins whole windows leave empty, for every visitor alike. The default is the baseline's default -contamination: a shape that common is no outlier. 0 turns it off")
	fs.Float64Var(&c.RiseMargin, "rise-margin", c.RiseMargin, "a visitor already published within -detection-ttl is published again when its score rises at least this much over the last published score. The default 1 is one bit, a window half as likely again: a real change, not rescoring noise; 'inf' never republishes early")
	fs.IntVar(&c.Top, "top", c.Top, fmt.Sprintf("contributions a detection carries, largest first: why the visitor is anomalous (1 to %d)", maxTop))
	fs.IntVar(&c.MaxTracked, "max-tracked", c.MaxTracked, "most visitors whose detection state is kept in memory (about 100 bytes each); beyond it the publisher forgets arbitrary ones, which may then be published once more. It also bounds, each on its own, the visitors scored within -detection-ttl, the members of groups and the visits begun within it that groups and crowds count")
	fs.IntVar(&c.GroupMin, "group-min", c.GroupMin, "fewest visitors of a site that make a coordinated attack, each member published whatever -min-hits says: those with a hit of the same signature (class and two top features) within -detection-ttl (but returning ones, and those whose own top contribution is below -group-rarity), or visitors whose visits began alike (see -crowd-ratio); 0 looks for neither")
	fs.Float64Var(&c.GroupShare, "group-share", c.GroupShare, "and the least share of the site's visitors scored within -detection-ttl that they must be: people have hits at the contamination rate, spread over many signatures")
	fs.Float64Var(&c.GroupRarity, "group-rarity", c.GroupRarity, "and the least median, over them, of their top feature's contribution, in bits: attackers bring values the site's history hardly has (an empty bin scores -log2(alpha), 13.3 by default), a crowd of people more of what it has (10 is a value a thousandth as dense as the densest)")
	fs.Float64Var(&c.CrowdRatio, "crowd-ratio", c.CrowdRatio, "visitors whose visits began alike within -detection-ttl (the first score of each: its class and window shape, the feature values to a quarter) are a coordinated attack, whatever their scores, when they are at least -group-min and at least this many times as many as the share of the site's visits that began so in the baseline's history would bring among as many first scores: one program behind many addresses begins them all alike. 0 looks for none")
	fs.Float64Var(&c.CrowdChance, "crowd-chance", c.CrowdChance, "and so many that the history's share would bring as many less often than this (Poisson): the default, one in a billion, keeps chance out of a check made at the first score of every visit of every site")
	fs.IntVar(&c.RevokeAfter, "revoke-after", c.RevokeAfter, "scores in a row below the threshold that revoke a visitor's live detection made on its own evidence (not a group's or crowd's): a revocation record on the detections topic lifts the block before it expires. 0: never")
	fs.Float64Var(&c.CrowdExpected, "crowd-expected", c.CrowdExpected, "and the history's share would bring at most this many of them: that many of the site's people, beginning their visits so by chance, would be published with the attack. A campaign whose visits begin as the site's people often do cannot be told from them by its beginnings. And they must be spread over pages (fewer than two of them to a page) or, on few pages, act on them (most of each one's requests posts or failures, as in a login attack; beginnings of visits may instead score above their threshold): people who come at once come for one page, a link shared widely, and read it as people do")
	fs.BoolVar(&c.PublishKnownPrograms, "publish-known-programs", c.PublishKnownPrograms, "publish returning visitors of the api class on their own hits. By default such a visitor, a program the site's history knows and whose windows its fit did not leave out as a bot's (the site's uptime monitors, search crawlers, feed readers, partners' integrations, its apps' regular users), is never published on its own evidence: programs differ from one another more than people do, and a class with too little history of its own is judged against the site's people (see the baseline service's -min-windows), where every program stands out. A program new to the site is judged as before")
	fs.Float64Var(&c.GroupReturning, "group-returning", c.GroupReturning, "and the largest share of them that the site's history knows (returning visitors): an attack comes from new addresses, a crowd of the site's own people (a sale, a rush) from many it has seen. Returning members are never published on the group's evidence")
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first unusable setting, naming its flag.
func (c *Config) Validate() error {
	switch {
	case !tableName.MatchString(c.Table):
		return fmt.Errorf("-scores-table: %q is not a plain table name", c.Table)
	case c.BatchSize < 1:
		return fmt.Errorf("-batch-size must be at least 1, got %d", c.BatchSize)
	case c.Linger <= 0:
		return fmt.Errorf("-batch-linger must be positive, got %v", c.Linger)
	case c.Retention < 24*time.Hour:
		return fmt.Errorf("-retention must be at least a day (history is dropped by daily partition), got %v", c.Retention)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("-shutdown-timeout must be positive, got %v", c.ShutdownTimeout)
	case c.DetectionBatchSize < 1:
		return fmt.Errorf("-detections-batch-size must be at least 1, got %d", c.DetectionBatchSize)
	case c.DetectionLinger <= 0:
		// kafka-go reads 0 as its 1 s default.
		return fmt.Errorf("-detections-linger must be positive, got %v", c.DetectionLinger)
	}
	if err := c.EventTime.Validate(); err != nil {
		return err
	}
	return c.Select.Validate()
}

// Validate reports the first unusable setting, naming its flag.
func (c *SelectConfig) Validate() error {
	switch {
	case c.TTL < time.Second:
		return fmt.Errorf("-detection-ttl must be at least 1s, got %v", c.TTL)
	case c.MinHits < 1 || c.MinHits > maxMinHits:
		return fmt.Errorf("-min-hits must be from 1 to %d, got %d", maxMinHits, c.MinHits)
	case math.IsNaN(c.MinMargin) || math.IsInf(c.MinMargin, 0) || c.MinMargin < 0:
		return fmt.Errorf("-min-margin must be a finite number at least 0, got %v", c.MinMargin)
	case !(c.UsualStart >= 0 && c.UsualStart <= 1):
		return fmt.Errorf("-usual-start must be in [0, 1], got %v", c.UsualStart)
	case math.IsNaN(c.EarlyHitMargin) || c.EarlyHitMargin < 0:
		return fmt.Errorf("-early-hit-margin must be at least 0 (inf counts no beginning), got %v", c.EarlyHitMargin)
	case math.IsNaN(c.RiseMargin) || c.RiseMargin < 0:
		return fmt.Errorf("-rise-margin must be at least 0 (inf never republishes early), got %v", c.RiseMargin)
	case c.Top < 1 || c.Top > maxTop:
		return fmt.Errorf("-top must be from 1 to %d, got %d", maxTop, c.Top)
	case c.MaxTracked < 1:
		return fmt.Errorf("-max-tracked must be at least 1, got %d", c.MaxTracked)
	case c.GroupMin < 0:
		return fmt.Errorf("-group-min must be 0 (no groups) or more, got %d", c.GroupMin)
	case !(c.GroupShare >= 0 && c.GroupShare <= 1):
		return fmt.Errorf("-group-share must be in [0, 1], got %v", c.GroupShare)
	case math.IsNaN(c.GroupRarity) || math.IsInf(c.GroupRarity, 0):
		return fmt.Errorf("-group-rarity must be a finite number, got %v", c.GroupRarity)
	case !(c.GroupReturning >= 0 && c.GroupReturning <= 1):
		return fmt.Errorf("-group-returning must be in [0, 1], got %v", c.GroupReturning)
	case !(c.CrowdRatio == 0 || c.CrowdRatio >= 1) || math.IsInf(c.CrowdRatio, 0):
		return fmt.Errorf("-crowd-ratio must be 0 (no crowds) or a finite number at least 1, got %v", c.CrowdRatio)
	case !(c.CrowdChance > 0 && c.CrowdChance < 1):
		return fmt.Errorf("-crowd-chance must be in (0, 1), got %v", c.CrowdChance)
	case c.RevokeAfter < 0:
		return fmt.Errorf("-revoke-after must not be negative, got %d", c.RevokeAfter)
	case !(c.CrowdExpected > 0):
		return fmt.Errorf("-crowd-expected must be above 0, got %v", c.CrowdExpected)
	}
	return nil
}

// Crowds reports whether crowds of visits begun alike are looked for.
func (c *SelectConfig) Crowds() bool { return c.GroupMin > 0 && c.CrowdRatio > 0 }

// DetectionsWriter returns w, the writer of the detections topic
// (service.KafkaConfig.Writer), with the batches of c: a produce request
// waits DetectionLinger to fill.
func (c *Config) DetectionsWriter(w *kafka.Writer) *kafka.Writer {
	w.BatchSize, w.BatchTimeout = c.DetectionBatchSize, c.DetectionLinger
	return w
}
