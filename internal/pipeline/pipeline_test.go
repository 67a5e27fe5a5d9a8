package pipeline_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/pipeline"
)

// TestStack starts the whole stack, sends a few events through it, restarts
// services both ways and closes it.
func TestStack(t *testing.T) {
	st := pipeline.New(t, pipeline.Config{
		Flags: map[pipeline.Name][]string{pipeline.Detector: {"-batch-linger", "50ms"}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	for _, n := range pipeline.Names() {
		svc := st.Service(n)
		if !svc.Running() {
			t.Fatalf("%s is not running", n)
		}
		if _, err := os.Stat(svc.LogPath()); err != nil {
			t.Errorf("%s log: %v", n, err)
		}
		if !strings.HasPrefix(svc.LogPath(), st.LogDir()) {
			t.Errorf("%s log %s is not in %s", n, svc.LogPath(), st.LogDir())
		}
	}
	if args := strings.Join(st.Service(pipeline.Detector).Args(), " "); !strings.Contains(args, "-baseline-url "+st.Service(pipeline.Baseline).URL()) ||
		!strings.HasSuffix(args, "-batch-linger 50ms") {
		t.Errorf("detector args %q: want the baseline URL, and the extra flags last", args)
	}

	// Without the token the API refuses; Do sends it.
	resp, err := http.Get(st.Service(pipeline.Baseline).URL() + "/v1/sites")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/sites without a token: %d, want 401", resp.StatusCode)
	}
	resp, err = st.Service(pipeline.Baseline).Do(ctx, http.MethodGet, "/v1/sites", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/sites: %d, want 200", resp.StatusCode)
	}

	// Events reach the detector and the baseline service's ingest.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(st.Brokers()...), Topic: pipeline.TopicRequests, Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	const n = 3
	at := time.Now().Add(-time.Hour).UnixNano()
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, kafka.Message{Key: []byte("a.example|192.0.2.1"), Value: []byte(`{"EdgeStartTimestamp":` +
			itoa(at+int64(i)) + `,"ZoneName":"a.example","ClientIP":"192.0.2.1","ClientRequestMethod":"GET","ClientRequestPath":"/","ClientRequestUserAgent":"x","EdgeResponseStatus":200}`)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitMetric(ctx, t, st.Service(pipeline.Detector), "anomalyd_detector_events_total", n)
	waitMetric(ctx, t, st.Service(pipeline.Baseline), "anomalyd_baseline_ingest_rows_total", n)
	if _, err := st.Service(pipeline.Publisher).MetricsValue(ctx, "anomalyd_no_such_metric"); !errors.Is(err, pipeline.ErrNoMetric) {
		t.Errorf("missing metric: %v, want ErrNoMetric", err)
	}

	// A graceful stop and a kill; both start again on the same port.
	det := st.Service(pipeline.Detector)
	if err := det.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if det.Running() {
		t.Error("the detector runs after Stop")
	}
	if err := det.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pub := st.Service(pipeline.Publisher)
	if err := pub.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(ctx); err == nil {
		t.Error("starting a running service succeeded")
	}
	// Killed again, not stopped: the killed member stays in the group
	// until its session times out (30 s), and a graceful stop during the
	// new member's join waits for that.
	if err := pub.Kill(); err != nil {
		t.Fatal(err)
	}
	// The restarted detector resumes from committed offsets: nothing new.
	if v, err := det.MetricsValue(ctx, "anomalyd_detector_events_total"); err != nil || v != 0 {
		t.Errorf("restarted detector's events_total = %v, %v; want 0", v, err)
	}
	log, err := os.ReadFile(det.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(log), "=== "); got != 2 {
		t.Errorf("detector log has %d run headers, want 2", got)
	}

	dir := st.Dir()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stack directory %s left behind: %v", dir, err)
	}
	for _, n := range pipeline.Names() {
		if st.Service(n).Running() {
			t.Errorf("%s runs after Close", n)
		}
	}
}

func TestStartErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := pipeline.Start(ctx, pipeline.Config{}); err == nil {
		t.Error("no BinDir: no error")
	}
	if _, err := pipeline.Start(ctx, pipeline.Config{BinDir: t.TempDir(), KafkaAddr: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "pipeline.Build") {
		t.Errorf("empty BinDir: %v, want an error naming pipeline.Build", err)
	}
	if _, err := pipeline.Start(ctx, pipeline.Config{BinDir: t.TempDir(), KafkaAddr: "10.0.0.1:9092"}); err == nil || !strings.Contains(err.Error(), "127.0.0.1 only") {
		t.Errorf("non-loopback broker: %v", err)
	}
}

func waitMetric(ctx context.Context, t *testing.T, svc *pipeline.Service, name string, want float64) {
	t.Helper()
	for {
		v, err := svc.MetricsValue(ctx, name)
		if err == nil && v >= want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s %s = %v (%v), want %v", svc.Name(), name, v, err, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
