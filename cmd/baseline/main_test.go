package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
)

const token = "test-token-0123456789"

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestService runs the baseline service as its main does, against a real
// ClickHouse and an in-process Kafka broker, feeds it generated traffic and
// uses its API as a detector would.
func TestService(t *testing.T) {
	kf := testenv.Kafka(t, "requests", "deadletter")
	ch := testenv.ClickHouse(t)
	listen := freeAddr(t)
	args := []string{
		"-brokers", strings.Join(kf.Brokers(), ","), "-clickhouse", ch.Addr(), "-listen", listen,
		"-token", token, "-identity-secret", "service test secret!",
		"-window-buckets", "5", "-min-windows", "50", "-refresh", "1s", "-batch-linger", "200ms",
		"-log-level", "warn",
		// The generated traffic is history from January: replayed on
		// purpose, as the README tells operators to.
		"-max-event-age", "0",
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	var a app
	go func() { exit <- serviceMain(ctx, &a, args, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit code %d, stderr:\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("the service did not stop within 30 s of its context")
		}
	})

	// Traffic of one site, then a malformed event.
	cfg := traffic.DefaultConfig()
	cfg.Sites, cfg.Visitors, cfg.Events, cfg.Duration = 1, 300, 5000, 30*time.Minute
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []kafka.Message{{Value: []byte(`{"broken":`)}}
	for i := range reqs {
		js, err := reqs[i].LogpushJSON()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(reqs[i].Site + "|" + reqs[i].ClientIP), Value: js})
	}
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(kf.Brokers()...), Topic: "requests", Balancer: &kafka.Hash{},
		Transport: transport, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	base := "http://" + listen
	get := func(path string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	site := reqs[0].Site
	deadline := time.Now().Add(60 * time.Second)
	for {
		var sites []baseline.SiteStatus
		resp := get("/v1/sites", "Authorization", "Bearer "+token)
		if resp.StatusCode == http.StatusOK {
			json.NewDecoder(resp.Body).Decode(&sites)
		}
		// The site, and the pool of every site.
		if len(sites) == 2 && sites[1].Site == site && sites[1].Status == baseline.StatusOK && sites[1].Requests == uint64(len(reqs)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no baseline for %s within 60 s: %+v\n%s", site, sites, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	if resp := get("/v1/sites/" + site + "/baseline"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", resp.StatusCode)
	}
	if resp := get("/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	if resp := get("/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz: %d", resp.StatusCode)
	}
	resp := get("/v1/sites/"+site+"/baseline", "Authorization", "Bearer "+token)
	body, _ := io.ReadAll(resp.Body)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || len(body) == 0 || etag == "" {
		t.Fatalf("baseline: %d, %d bytes, ETag %q", resp.StatusCode, len(body), etag)
	}
	if resp := get("/v1/sites/"+site+"/baseline", "Authorization", "Bearer "+token, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
	}
	metrics, _ := io.ReadAll(get("/metrics", "Authorization", "Bearer "+token).Body)
	for _, want := range []string{
		`anomalyd_baseline_ingest_rows_total ` + fmt.Sprint(len(reqs)),
		`anomalyd_baseline_dead_letters_total{reason="malformed"} 1`,
		`anomalyd_baseline_builds_total{result="ok"}`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestServiceExitsWhenIngestFails: once the broker refuses the ingest's
// commits, the service exits with an error, so that its orchestrator
// starts it again from the offsets committed. It used to go on serving
// baselines, its ingest stopped, until a signal came.
func TestServiceExitsWhenIngestFails(t *testing.T) {
	kf := testenv.Kafka(t, "requests", "deadletter")
	ch := testenv.ClickHouse(t)
	args := []string{
		"-brokers", strings.Join(kf.Brokers(), ","), "-clickhouse", ch.Addr(), "-listen", freeAddr(t),
		"-identity-secret", "service test secret!", "-batch-linger", "100ms", "-log-level", "error",
		"-max-event-age", "0", "-requests-table", "requests_exit_test",
	}
	kf.Cluster().Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		kf.Cluster().KeepControl()
		if req.Key() == int16(kmsg.OffsetCommit) {
			return nil, errors.New("commits refused (test)"), true
		}
		return nil, nil, false
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	var a app
	go func() { exit <- serviceMain(ctx, &a, args, &stderr) }()

	w := &kafka.Writer{Addr: kafka.TCP(kf.Brokers()...), Topic: "requests", RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	event := fmt.Sprintf(`{"EdgeStartTimestamp":%d,"ZoneName":"a.example","ClientIP":"192.0.2.1","ClientRequestPath":"/"}`, time.Now().Unix())
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("a.example|192.0.2.1"), Value: []byte(event)}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code == 0 || !strings.Contains(stderr.String(), "committing") {
			t.Errorf("exit code %d, want an error naming the failed commit; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the service still runs 60 s after its ingest failed to commit; stderr:\n%s", stderr.String())
	}
}
