package baseline

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anomalyd/anomalyd/internal/service"
)

// Build results, the values of the builds counter's "result" label.
const (
	resultOK     = "ok"
	resultTooFew = "too_few"
	resultError  = "error"
)

// ClickHouse operations, the values of the ClickHouseErrors "op" label that
// the baseline side uses. Ingest adds its own ("create_table", "insert",
// "drop_partition").
const (
	opListSites = "list_sites"
	opNewest    = "newest"
	opBuild     = "build"
	opPing      = "ping"
)

// Metrics are the baseline service's metrics, building and serving
// baselines as well as ingesting requests, all named anomalyd_baseline_*:
//
//	builds_total{result}               builds by result: ok, too_few, error
//	build_duration_seconds             time of one build, whatever its result
//	cache_hits_total                   Get answered from the cache
//	cache_misses_total                 Get that started or waited for a build
//	unknown_sites_total                Get of a site without history, answered
//	                                   without a query once the sites are listed
//	rebuilds_limited_total             rebuilds refused by -rebuild-limit
//	clickhouse_errors_total{op}        failed ClickHouse calls by operation:
//	                                   list_sites, newest, build, ping (baselines),
//	                                   create_table, insert, drop_partition (ingest)
//	ingest_rows_total                  request rows inserted into ClickHouse
//	ingest_batches_total               insert batches sent
//	ingest_batch_duration_seconds      time of one insert batch
//	dead_letters_total{reason}         messages sent to the dead-letter topic:
//	                                   malformed, identity, future, too_old
//	offset_commits_total               Kafka offset commits
//	retention_cutoff_timestamp_seconds start of the oldest day of requests kept
//	                                   at the last retention pass
type Metrics struct {
	// Baselines.
	Builds          *prometheus.CounterVec // label "result"
	BuildSeconds    prometheus.Histogram
	CacheHits       prometheus.Counter
	CacheMisses     prometheus.Counter
	UnknownSites    prometheus.Counter
	RebuildsLimited prometheus.Counter
	// Shared: label "op".
	ClickHouseErrors *prometheus.CounterVec
	// Ingest.
	IngestRows         prometheus.Counter
	IngestBatches      prometheus.Counter
	IngestBatchSeconds prometheus.Histogram
	DeadLetters        *prometheus.CounterVec // label "reason"
	OffsetCommits      prometheus.Counter
	RetentionCutoff    prometheus.Gauge
}

// NewMetrics builds the metrics and registers them with reg; a nil reg
// registers nothing (tests). It panics if a metric is already registered,
// as that is a wiring bug.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "anomalyd", "baseline"
	m := &Metrics{
		Builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "builds_total",
			Help: "Baseline builds by result: ok, too_few (below -min-windows), error.",
		}, []string{"result"}),
		BuildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "build_duration_seconds",
			Help: "Time to build one site's baseline, whatever the result.",
			// From a small site (10 ms) to a 2M-window build (minutes).
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}),
		CacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cache_hits_total",
			Help: "Baseline requests answered from the cache without a build.",
		}),
		CacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cache_misses_total",
			Help: "Baseline requests that started a build or waited for one.",
		}),
		UnknownSites: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "unknown_sites_total",
			Help: "Baseline requests for sites without history, answered without a query.",
		}),
		RebuildsLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rebuilds_limited_total",
			Help: "Rebuilds asked through the API and refused by -rebuild-limit.",
		}),
		ClickHouseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "clickhouse_errors_total",
			Help: "Failed ClickHouse calls by operation.",
		}, []string{"op"}),
		IngestRows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "ingest_rows_total",
			Help: "Request rows inserted into ClickHouse.",
		}),
		IngestBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "ingest_batches_total",
			Help: "Insert batches sent to ClickHouse.",
		}),
		IngestBatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "ingest_batch_duration_seconds",
			Help:    "Time to insert one batch into ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "dead_letters_total",
			Help: "Messages sent to the dead-letter topic, by reason: malformed, identity, future (beyond -max-event-ahead), too_old (beyond -max-event-age).",
		}, []string{"reason"}),
		OffsetCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "offset_commits_total",
			Help: "Kafka offset commits of the requests topic.",
		}),
		RetentionCutoff: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "retention_cutoff_timestamp_seconds",
			Help: "Start of the oldest day of requests kept, as of the last retention pass: -retention before the newest request, which is at most -max-event-ahead past the clock.",
		}),
	}
	// Known label values start at 0, so that rate() and alerts see a
	// series before the first event.
	for _, r := range []string{resultOK, resultTooFew, resultError} {
		m.Builds.WithLabelValues(r)
	}
	for _, op := range []string{opListSites, opNewest, opBuild, opPing, "insert", "drop_partition"} {
		m.ClickHouseErrors.WithLabelValues(op)
	}
	for _, r := range service.EventReasons() {
		m.DeadLetters.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Builds, m.BuildSeconds, m.CacheHits, m.CacheMisses, m.UnknownSites, m.RebuildsLimited, m.ClickHouseErrors,
			m.IngestRows, m.IngestBatches, m.IngestBatchSeconds, m.DeadLetters, m.OffsetCommits, m.RetentionCutoff)
	}
	return m
}
