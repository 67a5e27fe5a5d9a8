package publisher

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anomalyd/anomalyd/internal/service"
)

// ClickHouse operations, the values of the ClickHouseErrors "op" label.
const (
	opCreateTable   = "create_table"
	opInsert        = "insert"
	opDropPartition = "drop_partition"
	opPing          = "ping"
)

// Dead-letter reasons, the values of the DeadLetters "reason" label.
const (
	reasonMalformed = "malformed" // not a JSON score record
	reasonInvalid   = "invalid"   // a record no consumer can use, or the table cannot store
)

// Metrics are the publisher's metrics, all named anomalyd_publisher_* (the
// policy's are policy.Watcher's):
//
//	scores_read_total                 messages read from the scores topic
//	rows_inserted_total               score rows inserted into ClickHouse
//	insert_batches_total              insert batches sent
//	insert_batch_duration_seconds     time of one insert batch
//	clickhouse_errors_total{op}       failed ClickHouse calls by operation:
//	                                  create_table, insert, drop_partition, ping
//	detections_published_total        detections written to the detections topic
//	group_detections_total            of them, members of coordinated attacks
//	revocations_total{reason}         live detections lifted: site_off, simulate,
//	                                  allowed, not_anomalous
//	detections_suppressed_total{reason}  scores above threshold not published:
//	                                  duplicate, allow_list, site_off, simulate, gate, usual_start
//	dead_letters_total{reason}        messages sent to the dead-letter topic:
//	                                  malformed, invalid, future, too_old
//	offset_commits_total              Kafka offset commits of the scores topic
//	shadow_detections_total{model,live}  visitors a candidate model would have
//	                                  published, by whether live had them detected then
//	shadow_missed_total{model}        visitors live published that a candidate
//	                                  did not have detected then
//	tracked_visitors                  visitors whose detection state is in memory
//	tracked_evictions_total           visitors forgotten early at -max-tracked
//	retention_cutoff_timestamp_seconds  start of the oldest day of scores kept
//	                                  at the last retention pass
type Metrics struct {
	ScoresRead       prometheus.Counter
	RowsInserted     prometheus.Counter
	InsertBatches    prometheus.Counter
	InsertSeconds    prometheus.Histogram
	ClickHouseErrors *prometheus.CounterVec // label "op"
	Published        prometheus.Counter
	GroupDetections  prometheus.Counter
	Revocations      *prometheus.CounterVec // label "reason"
	Suppressed       *prometheus.CounterVec // label "reason"
	DeadLetters      *prometheus.CounterVec // label "reason"
	OffsetCommits    prometheus.Counter
	ShadowDetections *prometheus.CounterVec // labels "model", "live"
	ShadowMissed     *prometheus.CounterVec // label "model"
	Tracked          prometheus.Gauge
	Evictions        prometheus.Counter
	RetentionCutoff  prometheus.Gauge
}

// NewMetrics builds the metrics and registers them with reg; a nil reg
// registers nothing (tests). It panics if a metric is already registered,
// as that is a wiring bug.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "anomalyd", "publisher"
	m := &Metrics{
		ScoresRead: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "scores_read_total",
			Help: "Messages read from the scores topic, valid or not.",
		}),
		RowsInserted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rows_inserted_total",
			Help: "Score rows inserted into ClickHouse.",
		}),
		InsertBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "insert_batches_total",
			Help: "Insert batches sent to ClickHouse.",
		}),
		InsertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "insert_batch_duration_seconds",
			Help:    "Time to insert one batch of scores into ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		ClickHouseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "clickhouse_errors_total",
			Help: "Failed ClickHouse calls by operation: create_table, insert, drop_partition, ping.",
		}, []string{"op"}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "detections_published_total",
			Help: "Detections written to the detections topic.",
		}),
		Revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "revocations_total",
			Help: "Live detections lifted by a revocation on the detections topic, by reason: site_off, simulate, allowed (the policy changed), not_anomalous (-revoke-after scores below the threshold).",
		}, []string{"reason"}),
		GroupDetections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "group_detections_total",
			Help: "Detections of members of coordinated attacks: visitors of a site that were outliers in the same way at once (see -group-min).",
		}),
		Suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "detections_suppressed_total",
			Help: "Scores above their threshold not published, by reason: duplicate (within the TTL), allow_list, site_off, gate (-min-margin or -min-hits).",
		}, []string{"reason"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "dead_letters_total",
			Help: "Messages sent to the dead-letter topic, by reason: malformed, invalid, future (scored_at beyond -max-event-ahead), too_old (beyond -max-event-age).",
		}, []string{"reason"}),
		OffsetCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "offset_commits_total",
			Help: "Kafka offset commits of the scores topic.",
		}),
		ShadowDetections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "shadow_detections_total",
			Help: "Visitors a candidate model (the -policy's shadows) would have published, never published, by model and by whether the live model had the visitor detected then (live=\"true\": both; \"false\": the candidate only).",
		}, []string{"model", "live"}),
		ShadowMissed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "shadow_missed_total",
			Help: "Visitors the live model published that a candidate model did not have detected then (live only), by model.",
		}, []string{"model"}),
		Tracked: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "tracked_visitors",
			Help: "Visitors whose detection state (hits, live detection) is kept in memory.",
		}),
		Evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tracked_evictions_total",
			Help: "Visitors forgotten early because -max-tracked were tracked; each may be published once more.",
		}),
		RetentionCutoff: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "retention_cutoff_timestamp_seconds",
			Help: "Start of the oldest day of scores kept, as of the last retention pass: -retention before the newest score, which is at most -max-event-ahead past the clock.",
		}),
	}
	// Known label values start at 0, so that rate() and alerts see a
	// series before the first event.
	for _, op := range []string{opCreateTable, opInsert, opDropPartition, opPing} {
		m.ClickHouseErrors.WithLabelValues(op)
	}
	for _, o := range []Outcome{SuppressedDuplicate, SuppressedAllowList, SuppressedSiteOff, SuppressedSimulate, SuppressedGate, SuppressedUsualStart, SuppressedKnownProgram} {
		m.Suppressed.WithLabelValues(o.String())
	}
	for _, r := range []string{reasonMalformed, reasonInvalid, service.ReasonFuture, service.ReasonTooOld} {
		m.DeadLetters.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.ScoresRead, m.RowsInserted, m.InsertBatches, m.InsertSeconds, m.ClickHouseErrors,
			m.Published, m.GroupDetections, m.Revocations, m.Suppressed, m.DeadLetters, m.OffsetCommits, m.ShadowDetections, m.ShadowMissed, m.Tracked, m.Evictions, m.RetentionCutoff)
	}
	return m
}
