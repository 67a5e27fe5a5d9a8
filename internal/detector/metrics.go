package detector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anomalyd/anomalyd/internal/service"
)

// Metrics are the detector's Prometheus metrics, anomalyd_detector_*.
type Metrics struct {
	Events          prometheus.Counter
	DeadLetters     *prometheus.CounterVec // by reason: service.EventReasons
	Scored          prometheus.Counter
	Outliers        prometheus.Counter     // scored above the threshold
	Early           prometheus.Counter     // records of visits' beginnings
	ShadowScores    prometheus.Counter     // score records of candidate models
	AllowedRecords  prometheus.Counter     // records of visitors allowed for who they are
	Unscored        *prometheus.CounterVec // by reason: no_baseline, too_few_requests, backfill, error, site_off, allowed
	RecencySkips    prometheus.Counter
	Batches         prometheus.Counter
	BatchSeconds    prometheus.Histogram
	StoreErrors     *prometheus.CounterVec // by operation: prefetch, flush
	KafkaErrors     *prometheus.CounterVec // by operation: fetch, produce, commit
	PartitionResets prometheus.Counter
	PartitionLag    *prometheus.GaugeVec   // by partition
	Evictions       *prometheus.CounterVec // by what: open, closed, recency
}

// NewMetrics registers the detector's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "anomalyd", "detector"
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}
	}
	m := &Metrics{
		Events:         prometheus.NewCounter(opts("events_total", "Request events read from the requests topic.")),
		DeadLetters:    prometheus.NewCounterVec(opts("dead_letters_total", "Events sent to the dead-letter topic, by reason."), []string{"reason"}),
		Scored:         prometheus.NewCounter(opts("scored_total", "Visitors scored: score records produced.")),
		Outliers:       prometheus.NewCounter(opts("outliers_total", "Scores above their threshold.")),
		Early:          prometheus.NewCounter(opts("early_records_total", "Records of visits' beginnings (windows of the baselines' -early-requests requests), written for crowds and not counted as scores.")),
		ShadowScores:   prometheus.NewCounter(opts("shadow_scores_total", "Score records of candidate models (the -policy's shadows), written next to the live model's and never published.")),
		AllowedRecords: prometheus.NewCounter(opts("allowed_records_total", "Records of visitors the -policy allows for who they are (address, range, network, user agent, id), at most one a visitor per -rescore-interval, on which the publisher revokes their live detections.")),
		Unscored:       prometheus.NewCounterVec(opts("unscored_total", "Due scorings not made, by reason: the site has no baseline, the window has too few requests, an error; requests before -score-from (backfill); and requests the -policy keeps from detection: of a site off, or allowed."), []string{"reason"}),
		RecencySkips:   prometheus.NewCounter(opts("recency_skips_total", "Events not scored because their visitor was scored within the rescore interval.")),
		Batches:        prometheus.NewCounter(opts("batches_total", "Batches processed and committed.")),
		BatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "batch_seconds",
			Help:    "Time from a batch's last event read to its offsets committed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		StoreErrors: prometheus.NewCounterVec(opts("store_errors_total", "Feature store (Redis) failures, by operation; each is retried."), []string{"op"}),
		KafkaErrors: prometheus.NewCounterVec(opts("kafka_errors_total", "Kafka failures, by operation: fetch (the detector then exits, to be restarted), produce (retried), commit."), []string{"op"}),
		PartitionLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "partition_lag",
			Help: "Events of a requests partition not yet committed by this replica after its last batch of the partition: the high watermark the broker gave with the batch less the next offset. A partition another replica took over keeps the value of its last batch here."}, []string{"partition"}),
		PartitionResets: prometheus.NewCounter(opts("partition_resets_total", "Times the feature stores dropped their caches because a partition's offsets jumped: another replica owned it meanwhile.")),
		Evictions:       prometheus.NewCounterVec(opts("evictions_total", "State dropped from memory to stay within -max-visitors, by what: open buckets (written, read from Redis again if their visitor returns within the minute), closed buckets (read again when a window needs them), recency entries (their visitors scored again sooner than -rescore-interval)."), []string{"what"}),
	}
	for _, w := range []string{"open", "closed", "recency"} {
		m.Evictions.WithLabelValues(w)
	}
	for _, r := range service.EventReasons() {
		m.DeadLetters.WithLabelValues(r)
	}
	reg.MustRegister(m.Events, m.DeadLetters, m.Scored, m.Outliers, m.Early, m.ShadowScores, m.AllowedRecords, m.Unscored, m.RecencySkips,
		m.Batches, m.BatchSeconds, m.StoreErrors, m.KafkaErrors, m.PartitionResets, m.PartitionLag, m.Evictions)
	return m
}
