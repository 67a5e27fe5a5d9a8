package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/records"
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

// score is a score record of visitor on site, above the threshold.
func score(t *testing.T, site string, visitor uint64) []byte {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	js, err := json.Marshal(records.Score{
		V: records.Version, Site: site, Visitor: records.VisitorID(visitor), Score: 20, Threshold: 10,
		Features: []records.Contribution{
			{Feature: "requests", Value: 5, Contribution: 8},
			{Feature: "paths", Value: 4, Contribution: 12},
		},
		WindowStart: at.Add(-10 * time.Minute), WindowEnd: at, BaselineVersion: `"v1"`, ScoredAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestService runs the publisher as its main does, against a real
// ClickHouse and an in-process Kafka broker: scores in, detections out,
// the policy reloaded as by SIGHUP, a site simulated, and its HTTP
// endpoints.
func TestService(t *testing.T) {
	kf := testenv.Kafka(t, "scores", "detections", "deadletter")
	ch := testenv.ClickHouse(t)
	listen := freeAddr(t)
	policy := filepath.Join(t.TempDir(), "policy")
	writePolicy := func(text string) {
		if err := os.WriteFile(policy, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy("sites:\n  off.example: {off: true}\n")
	args := []string{
		"-brokers", strings.Join(kf.Brokers(), ","), "-clickhouse", ch.Addr(), "-listen", listen,
		"-token", token, "-policy", policy, "-batch-linger", "100ms", "-log-level", "warn",
		"-min-hits", "1", // one score makes a detection: this test is about wiring, not gates
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stderr testenv.SyncBuffer
	exit := make(chan int, 1)
	reload := make(chan os.Signal)
	a := app{reload: reload}
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

	transport := &kafka.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	w := &kafka.Writer{Addr: kafka.TCP(kf.Brokers()...), Topic: "scores", Balancer: &kafka.Hash{},
		Transport: transport, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	t.Cleanup(func() { w.Close() })
	produce := func(values ...[]byte) {
		t.Helper()
		msgs := make([]kafka.Message, len(values))
		for i, v := range values {
			msgs[i] = kafka.Message{Value: v}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	detections := kafka.NewReader(kafka.ReaderConfig{Brokers: kf.Brokers(), Topic: "detections", GroupID: "edge", MaxWait: 100 * time.Millisecond})
	t.Cleanup(func() { detections.Close() })
	// next returns the next detection's key.
	// next returns the next record's key, and its revocation reason.
	next := func() (string, string) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		m, err := detections.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("reading detections: %v\n%s", err, stderr.String())
		}
		var d records.Detection
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		return string(m.Key), d.Revoked
	}

	base := "http://" + listen
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	waitMetric := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, body := get("/metrics")
			if strings.Contains(body, want+"\n") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/metrics never showed %q\n%s", want, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The site switched off at start publishes nothing; the message after
	// a malformed one goes through.
	produce(score(t, "off.example", 1), []byte("{not json"), score(t, "on.example", 1))
	if key, _ := next(); key != "on.example|0000000000000001" {
		t.Errorf("detection keyed %q, want on.example's visitor 1", key)
	}
	waitMetric(`anomalyd_publisher_detections_suppressed_total{reason="site_off"} 1`)
	waitMetric(`anomalyd_publisher_dead_letters_total{reason="malformed"} 1`)
	waitMetric(`anomalyd_publisher_rows_inserted_total 2`)

	// A reload switches the other site off instead.
	writePolicy("sites:\n  on.example: {simulate: true}\n")
	reload <- syscall.SIGHUP
	waitMetric(`anomalyd_policy_reloads_total{result="ok"} 1`)
	produce(score(t, "on.example", 2), score(t, "off.example", 2))
	// The site now simulated has its live detection revoked.
	got := map[string]string{}
	for range 2 {
		key, revoked := next()
		got[key] = revoked
	}
	if want := map[string]string{"on.example|0000000000000001": records.RevokedSimulate, "off.example|0000000000000002": ""}; !maps.Equal(got, want) {
		t.Errorf("records after the reload %v, want %v: a revocation and a detection", got, want)
	}

	// A bad file keeps the policy in force.
	writePolicy("sites:\n  on.example: {simulate: true}\n  off.example: {of: true}\n")
	reload <- syscall.SIGHUP
	waitMetric(`anomalyd_policy_reloads_total{result="error"} 1`)
	produce(score(t, "on.example", 3), score(t, "off.example", 3))
	if key, _ := next(); key != "off.example|0000000000000003" {
		t.Errorf("detection keyed %q after a failed reload, want off.example's visitor 3", key)
	}
	waitMetric(`anomalyd_publisher_detections_suppressed_total{reason="site_off"} 1`)
	waitMetric(`anomalyd_publisher_detections_suppressed_total{reason="simulate"} 2`)
	if !strings.Contains(stderr.String(), "line 3: field of not found") {
		t.Errorf("the failed reload's log does not name the file and line:\n%s", stderr.String())
	}

	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	// Detections go out before the insert: wait for the last batch's rows.
	waitMetric(`anomalyd_publisher_rows_inserted_total 6`)
	conn, err := ch.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM scores FINAL").Scan(&rows); err != nil || rows != 6 {
		t.Errorf("scores table: %d rows, %v; want all 6 scores", rows, err)
	}
}

func TestStartupErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(bad, []byte("# ok\nsites:\n  a.example:\n    allow: [{visitor: \"123\"}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-h"}, 0, "-rise-margin"},
		{"bad policy file", []string{"-policy", bad}, 2, bad + `: line 4: allow entry, field visitor`},
		{"missing policy file", []string{"-policy", bad + ".missing"}, 2, "-policy: reading the policy"},
		{"bad gate", []string{"-min-hits", "0"}, 2, "-min-hits"},
		{"same topic twice", []string{"-detections-topic", "scores"}, 2, "-scores-topic and -detections-topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			var a app
			if code := serviceMain(t.Context(), &a, tt.args, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

// TestSIGHUP sends the process a real SIGHUP once the service has caught
// it (its HTTP server answers only after), with ClickHouse unreachable:
// the policy is reloaded, /readyz says why the service is not ready, and
// shutdown is still clean.
func TestSIGHUP(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(policy, []byte("sites: {a.example: {off: true}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	args := []string{"-brokers", freeAddr(t), "-clickhouse", freeAddr(t), "-listen", listen, "-policy", policy}
	ctx, cancel := context.WithCancel(t.Context())
	var stderr testenv.SyncBuffer
	exit := make(chan int, 1)
	var a app
	go func() { exit <- serviceMain(ctx, &a, args, &stderr) }()
	defer func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("exit code %d, stderr:\n%s", code, stderr.String())
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var readyz string
	waitFor("/readyz", func() bool {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		readyz = string(body)
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if !strings.Contains(readyz, "clickhouse") {
		t.Errorf("/readyz with ClickHouse down: %q, want the reason", readyz)
	}
	// A changed file, then SIGHUP: read at once, not at the next look.
	if err := os.WriteFile(policy, []byte("sites: {a.example: {simulate: true}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the reload", func() bool { return strings.Contains(stderr.String(), "policy reloaded") })
}

// TestLinksNeitherRedisNorSketches: the publisher never touches visitor
// state, so it must not link go-redis (whose packages run init code) or
// the HyperLogLog sketches; the packages it shares with the detector keep
// those apart (pkg/featurestore, internal/service/redisconfig).
func TestLinksNeitherRedisNorSketches(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the publisher's packages: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/anomalyd/anomalyd/pkg/features") {
		t.Fatalf("go list -deps lists no pkg/features; the check would see nothing: %q", deps)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/redis/go-redis") || strings.HasPrefix(d, "github.com/axiomhq/hyperloglog") {
			t.Errorf("the publisher links %s", d)
		}
	}
}
