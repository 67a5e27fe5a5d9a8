package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
	"github.com/anomalyd/anomalyd/pkg/hbos"
	"github.com/anomalyd/anomalyd/pkg/keys"
	"github.com/anomalyd/anomalyd/pkg/model"
	"github.com/anomalyd/anomalyd/pkg/records"
)

const (
	readToken  = "read-token-0123456789abcdef"
	adminToken = "admin-token-0123456789abcdef"
)

// ctlRun runs anomalyctl with args and no environment.
func ctlRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

func TestHelpListsEveryVerb(t *testing.T) {
	code, out, _ := ctlRun(t, "-h")
	if code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for name, v := range verbs {
		if !strings.Contains(out, "\n  "+strings.TrimSpace(name+" "+v.args)+" ") {
			t.Errorf("-h does not list %q on a line of its own:\n%s", name, out)
		}
		if code, _, errOut := ctlRun(t, name, "-h"); code != 0 || !strings.Contains(errOut, "-o ") {
			t.Errorf("%s -h: exit %d, help without -o:\n%s", name, code, errOut)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"sites", "extra"},
		{"baseline"},
		{"sites", "-o", "xml"},
		{"key", "not hex"},
		{"key", `\x0`},
		{"baseline", "-class", "robots", "a.example"},
		{"explain", "a.example", "not-a-visitor"},
		{"sites", "-baseline-url", "ftp://x"},
	} {
		if code, _, errOut := ctlRun(t, args...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d with %q, want 2 and a reason", args, code, errOut)
		}
	}
}

func TestKey(t *testing.T) {
	k := keys.Key{Kind: keys.KindBucket, Site: keys.SiteID("shop.example.com"), Visitor: 0xc0ffee, Bucket: 29_000_000}
	raw := k.Append(nil)
	var escaped strings.Builder // as redis-cli --no-raw prints it
	for _, b := range raw {
		if b >= 0x20 && b < 0x7f && b != '\\' && b != '"' {
			escaped.WriteByte(b)
		} else {
			fmt.Fprintf(&escaped, `\x%02x`, b)
		}
	}
	for _, in := range []string{hex.EncodeToString(raw), `"` + escaped.String() + `"`} {
		code, out, errOut := ctlRun(t, "key", "-o", "json", in)
		if code != 0 {
			t.Fatalf("key %s: exit %d, %s", in, code, errOut)
		}
		var got keyView
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		want := keyView{Kind: "bucket", Site: fmt.Sprintf("%016x", k.Site), Visitor: records.VisitorID(0xc0ffee), Bucket: 29_000_000,
			Start: time.Unix(29_000_000*60, 0).UTC().Format(time.RFC3339)}
		if got != want {
			t.Errorf("key %s: %+v, want %+v", in, got, want)
		}
	}
	bad := append([]byte(nil), raw...)
	bad[len(bad)-6] ^= 1 // the tag no longer matches the site
	if code, _, errOut := ctlRun(t, "key", hex.EncodeToString(bad)); code != 1 || !strings.Contains(errOut, "tag") {
		t.Errorf("a corrupt key: exit %d, %q", code, errOut)
	}
}

// testModel fits a baseline model of the default features on ordinary
// visitors.
func testModel(t *testing.T) *hbos.Model {
	t.Helper()
	names := features.Set(0).Names()
	cols := make([][]float64, len(names))
	for i := range 400 {
		var a features.Aggregate
		a.Counts[features.CountRequests] = uint64(4 + i%15)
		a.Counts[features.CountAssets] = uint64(2 + i%9)
		a.Distinct[features.SketchPaths] = uint64(2 + i%5)
		a.Distinct[features.SketchUserAgents] = 1
		for j, v := range a.Vector(nil, 0) {
			cols[j] = append(cols[j], v)
		}
	}
	m, err := hbos.FitColumns(cols, hbos.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetNames(names); err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeAPI serves the baseline API's answers for one site, from its types,
// checking the tokens as the service does.
func fakeAPI(t *testing.T, bl *model.Baseline) *httptest.Server {
	t.Helper()
	enc, err := bl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	built := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	status := baseline.SiteStatus{Site: "shop.example.com", Status: "ok", Version: "3f1c2a9be04d7781", Built: built, Windows: 4321,
		Classes: []baseline.ClassStatus{{Class: "browser", Status: "ok", Version: "3f1c2a9be04d7781", Windows: 4321}, {Class: "api", Status: "too-few", ServedBy: "*/api"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sites", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]baseline.SiteStatus{status})
	})
	mux.HandleFunc("GET /v1/sites/{site}/baseline", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("site") != "shop.example.com" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"unknown site: no history"}`)
			return
		}
		w.Header().Set(baseline.ServedHeader, "shop.example.com/"+r.URL.Query().Get("class"))
		w.Header().Set("ETag", `"3f1c2a9be04d7781"`)
		w.Write(enc)
	})
	mux.HandleFunc("GET /v1/shadow", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("period") != "2h0m0s" || q.Get("site") != "shop.example.com" || q.Get("min_hits") != "2" || q.Get("examples") != "5" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"unexpected query %s"}`, r.URL.RawQuery)
			return
		}
		json.NewEncoder(w).Encode(baseline.ShadowComparison{From: built.Add(-2 * time.Hour), To: built, MinHits: 2, Sites: []baseline.SiteComparison{
			{Site: "shop.example.com", Live: 3, Models: []baseline.ModelComparison{{Model: "bins-20", Both: 2, LiveOnly: 1, CandidateOnly: 4,
				LiveOnlyExamples: []string{"00000000000000aa"}, CandidateOnlyExamples: []string{"00000000000000bb", "00000000000000cc"}}}}}})
	})
	mux.HandleFunc("POST /v1/sites/{site}/rebuild", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+adminToken {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":"rebuilding needs the admin token"}`)
			return
		}
		json.NewEncoder(w).Encode(status)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+readToken && r.Header.Get("Authorization") != "Bearer "+adminToken {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"a bearer token is required"}`)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSitesBaselineRebuild(t *testing.T) {
	m := testModel(t)
	srv := fakeAPI(t, &model.Baseline{Model: m})
	api := []string{"-baseline-url", srv.URL, "-token", readToken}
	with := func(verb string, rest ...string) []string { return append(append([]string{verb}, api...), rest...) }

	code, out, errOut := ctlRun(t, with("sites")...)
	if code != 0 || !strings.Contains(out, "shop.example.com  browser  ok") || !strings.Contains(out, "*/api") {
		t.Errorf("sites: exit %d, %s\n%s", code, errOut, out)
	}
	code, out, _ = ctlRun(t, with("sites", "-o", "json")...)
	var sites []baseline.SiteStatus
	if err := json.Unmarshal([]byte(out), &sites); code != 0 || err != nil || len(sites) != 1 || sites[0].Windows != 4321 {
		t.Errorf("sites -o json: exit %d, %v: %s", code, err, out)
	}

	code, out, errOut = ctlRun(t, with("baseline", "-o", "json", "shop.example.com")...)
	var bv baselineView
	if err := json.Unmarshal([]byte(out), &bv); code != 0 || err != nil {
		t.Fatalf("baseline: exit %d, %v, %s", code, err, errOut)
	}
	if bv.Threshold != m.Threshold() || len(bv.Features) != m.Features() || bv.ServedBy != "shop.example.com/browser" || bv.Version != "3f1c2a9be04d7781" {
		t.Errorf("baseline: %+v", bv)
	}
	for j, f := range bv.Features {
		edges, density := m.Histogram(j)
		if f.Feature != m.Names()[j] || len(f.Edges) != len(edges) || len(f.Density) != len(density) || f.Density[0] != density[0] {
			t.Errorf("feature %d: %+v", j, f)
		}
	}
	if code, out, _ := ctlRun(t, with("baseline", "shop.example.com")...); code != 0 || !strings.Contains(out, "threshold") || !strings.Contains(out, "#") {
		t.Errorf("baseline as text: exit %d\n%s", code, out)
	}
	if code, _, errOut := ctlRun(t, with("baseline", "nowhere.example")...); code != 1 || !strings.Contains(errOut, "no history") {
		t.Errorf("an unknown site: exit %d, %q; want 1 and the service's reason", code, errOut)
	}

	if code, _, errOut := ctlRun(t, with("rebuild", "shop.example.com")...); code != 1 || !strings.Contains(errOut, "admin token") {
		t.Errorf("rebuild with the read token: exit %d, %q; want 1 and the service's reason", code, errOut)
	}
	if code, out, errOut := ctlRun(t, with("rebuild", "-admin-token", adminToken, "shop.example.com")...); code != 0 || !strings.Contains(out, "shop.example.com: ok") {
		t.Errorf("rebuild: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = ctlRun(t, with("shadow", "-period", "2h", "-site", "shop.example.com", "-min-hits", "2")...)
	if code != 0 || !strings.Contains(out, "shop.example.com  bins-20  3     2     1          4               live only: 00000000000000aa; candidate only: 00000000000000bb 00000000000000cc") {
		t.Errorf("shadow: exit %d, %s\n%s", code, errOut, out)
	}
	if code, _, errOut := ctlRun(t, with("shadow", "-min-hits", "0")...); code != 2 || !strings.Contains(errOut, "-min-hits at least 1") {
		t.Errorf("shadow -min-hits 0: exit %d, %q; want 2", code, errOut)
	}
	if code, _, errOut := ctlRun(t, with("shadow", "-period", "3h")...); code != 1 || !strings.Contains(errOut, "unexpected query") {
		t.Errorf("shadow, a refused query: exit %d, %q; want 1 and the service's reason", code, errOut)
	}
	if code, _, errOut := ctlRun(t, "sites", "-baseline-url", srv.URL); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("sites without a token: exit %d, %q", code, errOut)
	}
}

// TestExplain writes a visitor's requests to a real Redis as the detector
// does, and checks that explain scores the window the detector would.
func TestExplain(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srvRedis := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srvRedis.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	w := features.DefaultWindow()
	store, err := featurestore.NewRedisStore(rdb, w, featurestore.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mem := featurestore.NewMemoryStore(w)
	site, visitor := "shop.example.com", uint64(0x5eed)
	at := time.Date(2026, 3, 2, 11, 19, 12, 0, time.UTC)
	var obs []features.Observation
	for i := range 12 {
		tm := at.Add(-time.Duration(11-i) * 20 * time.Second)
		o := features.Observation{Site: keys.SiteID(site), Visitor: visitor, Bucket: w.Bucket(tm), Second: uint32(tm.Unix())}
		o.Hashes[features.SketchPaths] = features.HashValue(fmt.Sprint("/p/", i))
		o.Hashes[features.SketchUserAgents] = features.HashValue("curl/8.0")
		o.Flags |= features.FlagNoReferer
		obs = append(obs, o)
	}
	for _, s := range []featurestore.Store{store, mem} {
		if err := s.Add(ctx, obs); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	agg, err := mem.Window(ctx, keys.SiteID(site), visitor, w.Bucket(at))
	if err != nil {
		t.Fatal(err)
	}
	m := testModel(t)
	want, err := m.Score(agg.Vector(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv := fakeAPI(t, &model.Baseline{Model: m})
	args := []string{"explain", "-baseline-url", srv.URL, "-token", readToken, "-redis", srvRedis.Addr(), "-at", at.Format(time.RFC3339)}
	code, out, errOut := ctlRun(t, append(args, "-o", "json", site, records.VisitorID(visitor))...)
	if code != 0 {
		t.Fatalf("explain: exit %d, %s", code, errOut)
	}
	var got explainView
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Requests != 12 || math.Abs(got.Score-want) > 1e-9 || got.Class != agg.Class().String() || len(got.Features) != m.Features() {
		t.Errorf("explain: %+v; want 12 requests, score %v", got, want)
	}
	var sum float64
	for _, f := range got.Features {
		sum += f.Contribution
	}
	if math.Abs(sum-got.Score) > 1e-9 {
		t.Errorf("contributions sum to %v, score %v", sum, got.Score)
	}
	if code, out, _ := ctlRun(t, append(args, site, records.VisitorID(visitor))...); code != 0 || !strings.Contains(out, "12 requests") {
		t.Errorf("explain as text: exit %d\n%s", code, out)
	}
	// An hour later the window is empty: said, not a score of nothing.
	args[len(args)-1] = at.Add(time.Hour).Format(time.RFC3339)
	if code, _, errOut := ctlRun(t, append(args, site, records.VisitorID(visitor))...); code != 1 || !strings.Contains(errOut, "no request") {
		t.Errorf("an empty window: exit %d, %q", code, errOut)
	}
}

// TestDetections follows the detections topic of an in-process broker:
// the detections already written with -since, and those written while it
// follows, until -n.
func TestDetections(t *testing.T) {
	kf := testenv.Kafka(t, "detections")
	w := &kafka.Writer{Addr: kafka.TCP(kf.Brokers()...), Topic: "detections", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { w.Close() })
	detection := func(v uint64) kafka.Message {
		now := time.Now().UTC()
		d := records.Detection{V: records.Version, Site: "shop.example.com", Visitor: records.VisitorID(v), Class: "browser", Score: 30, Threshold: 20,
			BaselineVersion: "3f1c2a9be04d7781", Top: []records.Contribution{{Feature: "logodds_4xx", Value: 2.8, Contribution: 13.3}},
			DetectedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Key: []byte(d.Site + "|" + d.Visitor), Value: b}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, detection(1), detection(2)); err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(kf.Brokers(), ",")
	code, out, errOut := ctlRun(t, "detections", "-brokers", brokers, "-since", "1h", "-n", "2", "-o", "json")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, records.VisitorID(2)) {
		t.Fatalf("-since 1h -n 2: exit %d, %q, %s", code, out, errOut)
	}

	// From now on: only what is written while it follows.
	done := make(chan string, 1)
	go func() {
		code, out, errOut := ctlRun(t, "detections", "-brokers", brokers, "-n", "1")
		done <- fmt.Sprint(code, " ", out, errOut)
	}()
	// Until it prints one: its readers find the end of the topic when
	// they start, which a detection written before may precede.
	for {
		if err := w.WriteMessages(ctx, detection(3)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-done:
			if !strings.HasPrefix(got, "0 ") || !strings.Contains(got, records.VisitorID(3)) || strings.Contains(got, records.VisitorID(1)) || !strings.Contains(got, "logodds_4xx") {
				t.Errorf("following from now: %q", got)
			}
			return
		case <-ctx.Done():
			t.Fatal("no new detection was printed")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	code, out, errOut := ctlRun(t, "policy", "check", "../../docs/policy.example.yaml")
	if code != 0 || !strings.Contains(out, "valid, version") || !strings.Contains(out, "3 sites (1 off)") {
		t.Errorf("the example: exit %d, %q %q", code, out, errOut)
	}
	bad := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("defaults:\n  min_hits: -1\n  allow:\n    - ip: 300.1.2.3\nsites:\n  a.example: {threshold: high}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = ctlRun(t, "policy", "check", "-o", "json", bad)
	var v policyView
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 || v.Valid || len(v.Faults) != 3 {
		t.Fatalf("a file with three faults: exit %d, %+v, %v", code, v, err)
	}
	for i, line := range []string{"line 4", "line 6", "line 2"} {
		if !strings.HasPrefix(v.Faults[i], line) {
			t.Errorf("fault %d: %q, want it at %s", i, v.Faults[i], line)
		}
	}
	if code, _, _ := ctlRun(t, "policy", "check", t.TempDir()+"/none.yaml"); code != 1 {
		t.Errorf("a missing file: exit %d", code)
	}
	if code, _, _ := ctlRun(t, "policy", "lint", bad); code != 2 {
		t.Errorf("policy lint: exit %d, want 2", code)
	}
}
