package baseline

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsNames pins the metric names: dashboards and alerts use them.
func TestMetricsNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := []string{
		"anomalyd_baseline_build_duration_seconds",
		"anomalyd_baseline_builds_total",
		"anomalyd_baseline_cache_hits_total",
		"anomalyd_baseline_cache_misses_total",
		"anomalyd_baseline_clickhouse_errors_total",
		"anomalyd_baseline_dead_letters_total",
		"anomalyd_baseline_ingest_batch_duration_seconds",
		"anomalyd_baseline_ingest_batches_total",
		"anomalyd_baseline_ingest_rows_total",
		"anomalyd_baseline_offset_commits_total",
		"anomalyd_baseline_rebuilds_limited_total",
		"anomalyd_baseline_retention_cutoff_timestamp_seconds",
		"anomalyd_baseline_unknown_sites_total",
	}
	if !slices.Equal(got, want) {
		t.Errorf("metrics %v,\nwant %v", got, want)
	}
	// A nil registerer registers nothing and does not panic.
	NewMetrics(nil).Builds.WithLabelValues(resultOK).Inc()
}
