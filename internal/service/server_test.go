package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"
)

const testToken = "0123456789abcdef-test"

type testServer struct {
	srv    *Server
	reg    *prometheus.Registry
	base   string
	client *http.Client
	log    *testenv.SyncBuffer
	cancel context.CancelFunc // cancels the context given to Start
}

// startServer starts a server on a free loopback port and shuts it down
// when the test ends.
func startServer(t *testing.T, cfg HTTPConfig, ready func(context.Context) error, api http.Handler) *testServer {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	reg := NewRegistry()
	logs := new(testenv.SyncBuffer)
	srv, err := NewServer(cfg, reg, ready, api, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	if err := srv.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		cancel()
		tr.CloseIdleConnections()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &testServer{
		srv: srv, reg: reg, base: "http://" + srv.Addr().String(),
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		log:    logs, cancel: cancel,
	}
}

// get requests path with the token (none if empty) and returns the status,
// the body and the response.
func (ts *testServer) get(t *testing.T, path, token string) (int, string, *http.Response) {
	t.Helper()
	return ts.do(t, http.MethodGet, path, token)
}

// do is get with another method.
func (ts *testServer) do(t *testing.T, method, path, token string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(body), resp
}

func apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hello", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
	return mux
}

func TestServerAuth(t *testing.T) {
	ts := startServer(t, HTTPConfig{Token: testToken}, nil, apiHandler())
	tests := []struct {
		name, path, header string
		want               int
		wantChallenge      string
	}{
		{"api without token", "/v1/hello", "", 401, `Bearer realm="anomalyd"`},
		{"api with wrong token", "/v1/hello", "Bearer " + testToken + "x", 401, `Bearer realm="anomalyd", error="invalid_token"`},
		{"api with a token prefix", "/v1/hello", "Bearer " + testToken[:len(testToken)-1], 401, `error="invalid_token"`},
		{"api with another scheme", "/v1/hello", "Basic " + testToken, 401, `Bearer realm="anomalyd"`},
		{"api with scheme only", "/v1/hello", "Bearer", 401, `Bearer realm="anomalyd"`},
		{"api with token", "/v1/hello", "Bearer " + testToken, 200, ""},
		{"scheme is case-insensitive", "/v1/hello", "bearer " + testToken, 200, ""},
		{"unknown path with token", "/v1/nope", "Bearer " + testToken, 404, ""},
		{"unknown path without token", "/v1/nope", "", 401, `Bearer realm="anomalyd"`},
		{"metrics without token", "/metrics", "", 401, `Bearer realm="anomalyd"`},
		{"metrics with token", "/metrics", "Bearer " + testToken, 200, ""},
		{"healthz is open", "/healthz", "", 200, ""},
		{"readyz is open", "/readyz", "", 200, ""},
		{"healthz ignores a wrong token", "/healthz", "Bearer nope", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tt.want, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChallenge && !(tt.wantChallenge != "" && strings.Contains(got, tt.wantChallenge)) {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantChallenge)
			}
		})
	}
	if strings.Contains(ts.log.String(), "no -token set") {
		t.Error("warned about a missing token although one is set")
	}
}

func TestServerWithoutTokenIsOpenAndWarns(t *testing.T) {
	ts := startServer(t, HTTPConfig{}, nil, apiHandler())
	for _, path := range []string{"/v1/hello", "/metrics", "/healthz"} {
		if code, body, _ := ts.get(t, path, ""); code != 200 {
			t.Errorf("GET %s: %d %q, want 200", path, code, body)
		}
	}
	if !strings.Contains(ts.log.String(), "level=WARN") || !strings.Contains(ts.log.String(), "no -token set") {
		t.Errorf("no warning about the missing token in the log:\n%s", ts.log)
	}
}

func TestServerNilAPI(t *testing.T) {
	ts := startServer(t, HTTPConfig{}, nil, nil)
	if code, _, _ := ts.get(t, "/anything", ""); code != 404 {
		t.Errorf("status %d, want 404", code)
	}
}

func TestServerReadyz(t *testing.T) {
	var mu sync.Mutex
	depErr := errors.New("redis: connection refused")
	var gotDeadline time.Duration
	ready := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := ctx.Deadline(); ok {
			gotDeadline = time.Until(d)
		}
		return depErr
	}
	ts := startServer(t, HTTPConfig{Token: testToken}, ready, nil)

	// The reason is for the operators: a probe without the token gets
	// only the status.
	code, body, resp := ts.get(t, "/readyz", "")
	if code != 503 || body != "not ready\n" {
		t.Errorf("dependency down, no token: %d %q, want 503 without the reason", code, body)
	}
	if code, body, _ := ts.get(t, "/readyz", testToken); code != 503 || !strings.Contains(body, "redis: connection refused") {
		t.Errorf("dependency down, with the token: %d %q, want 503 with the reason", code, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	mu.Lock()
	if gotDeadline <= 0 || gotDeadline > ReadyTimeout {
		t.Errorf("ready func got a deadline in %v, want within (0, %v]", gotDeadline, ReadyTimeout)
	}
	depErr = nil
	mu.Unlock()

	if code, body, _ := ts.get(t, "/readyz", ""); code != 200 || body != "ok\n" {
		t.Errorf("dependency up: %d %q, want 200 ok", code, body)
	}
	if code, _, _ := ts.get(t, "/healthz", ""); code != 200 {
		t.Errorf("healthz: %d, want 200", code)
	}
	// A repeated result is not logged again.
	ts.get(t, "/readyz", "")
	ts.get(t, "/readyz", "")
	logs := ts.log.String()
	if n := strings.Count(logs, "msg=ready"); n != 1 {
		t.Errorf("logged ready %d times, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, `msg="not ready"`); n != 1 {
		t.Errorf("logged not ready %d times, want 1:\n%s", n, logs)
	}

	// Once the service begins to shut down it is not ready, while health,
	// metrics and the API go on until Shutdown.
	ts.cancel()
	if code, body, _ := ts.get(t, "/readyz", ""); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("shutting down: %d %q, want 503 shutting down", code, body)
	}
	if code, _, _ := ts.get(t, "/healthz", ""); code != 200 {
		t.Errorf("healthz while shutting down: %d, want 200", code)
	}
	if code, _, _ := ts.get(t, "/metrics", testToken); code != 200 {
		t.Errorf("metrics while shutting down: %d, want 200", code)
	}
}

func TestServerMetrics(t *testing.T) {
	ts := startServer(t, HTTPConfig{Token: testToken}, nil, apiHandler())
	events := prometheus.NewCounter(prometheus.CounterOpts{Name: "anomalyd_test_events_total", Help: "Test events."})
	ts.reg.MustRegister(events)
	events.Add(3)
	ts.get(t, "/healthz", "")
	ts.get(t, "/v1/hello", "")

	code, body, resp := ts.get(t, "/metrics", testToken)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	for _, want := range []string{
		"anomalyd_test_events_total 3",
		`anomalyd_http_requests_total{code="200",handler="healthz"} 1`,
		`anomalyd_http_requests_total{code="401",handler="api"} 1`,
		`anomalyd_http_request_duration_seconds_count{handler="healthz"} 1`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
		"go_build_info{",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestNewServerErrors(t *testing.T) {
	if _, err := NewServer(HTTPConfig{}, nil, nil, nil, nil); err == nil {
		t.Error("a nil registry was accepted")
	}
	// Two servers on one registry would export clashing series.
	reg := prometheus.NewRegistry()
	if _, err := NewServer(HTTPConfig{}, reg, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(HTTPConfig{}, reg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "registering HTTP server metrics") {
		t.Errorf("second server on one registry: %v, want a registration error", err)
	}
}

func TestServerStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	tests := []struct {
		name    string
		cfg     HTTPConfig
		wantErr string
	}{
		{"address in use", HTTPConfig{Listen: busy.Addr().String()}, "address already in use"},
		{"missing certificate", HTTPConfig{Listen: "127.0.0.1:0", TLSCert: "/nonexistent/c.pem", TLSKey: "/nonexistent/k.pem"}, "loading -tls-cert and -tls-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := NewServer(tt.cfg, prometheus.NewRegistry(), nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = srv.Start(t.Context())
			if err == nil {
				srv.Shutdown(t.Context())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want one with %q", err, tt.wantErr)
			}
			// Shutdown after a failed Start is harmless.
			if err := srv.Shutdown(t.Context()); err != nil {
				t.Errorf("Shutdown after a failed Start: %v", err)
			}
		})
	}
}

// TestServerGracefulShutdown checks that Shutdown lets a request in flight
// finish, then refuses connections, and that nothing is left running
// (TestMain's goleak check).
func TestServerGracefulShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	srv, err := NewServer(HTTPConfig{Listen: "127.0.0.1:0"}, NewRegistry(), nil, api, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr().String()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	type result struct {
		body string
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := client.Get(url + "/slow")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{string(b), err}
	}()
	<-entered

	cancel() // the service's context: SIGTERM
	shut := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		shut <- srv.Shutdown(sctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-inflight; r.err != nil || r.body != "done" {
		t.Errorf("request in flight: %q, %v; want done", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		t.Error("the server still accepts connections after Shutdown")
	}
}

func TestServerShutdownTimeout(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done(): // closed by the forced close
		}
	})
	srv, err := NewServer(HTTPConfig{Listen: "127.0.0.1:0"}, NewRegistry(), nil, api, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer close(release)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := (&http.Client{Transport: tr}).Get("http://" + srv.Addr().String() + "/stuck")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a stuck request: %v, want a deadline error", err)
	}
	<-done // the forced close ended the request
}

func TestServerTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	ts := startServer(t, HTTPConfig{Token: testToken, TLSCert: certFile, TLSKey: keyFile}, nil, apiHandler())
	ts.base = strings.Replace(ts.base, "http://", "https://", 1)
	ts.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	code, body, resp := ts.get(t, "/v1/hello", testToken)
	if code != 200 || body != "hello" {
		t.Errorf("GET over TLS: %d %q", code, body)
	}
	if resp.TLS == nil {
		t.Error("response was not over TLS")
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key to files
// and returns them with a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testenv.NewCA(t, "anomalyd test CA")
	certFile, keyFile = ca.Issue(t, "server", x509.ExtKeyUsageServerAuth)
	return certFile, keyFile, ca.Pool
}

// TestMutualTLS: a baseline client with -baseline-ca and a client
// certificate reaches a server with -tls-client-ca; without the
// certificate, or with one of another CA, the API refuses it while the
// health checks stay open to probes, and a client without the CA does not
// trust the server.
func TestMutualTLS(t *testing.T) {
	ca, other := testenv.NewCA(t, "deployment CA"), testenv.NewCA(t, "another CA")
	serverCert, serverKey := ca.Issue(t, "baseline", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.Issue(t, "detector", x509.ExtKeyUsageClientAuth)
	strangerCert, strangerKey := other.Issue(t, "stranger", x509.ExtKeyUsageClientAuth)
	ts := startServer(t, HTTPConfig{Token: testToken, TLSCert: serverCert, TLSKey: serverKey, TLSClientCA: ca.File}, nil, apiHandler())
	base := strings.Replace(ts.base, "http://", "https://", 1)

	tests := []struct {
		name      string
		cfg       BaselineClientConfig
		path      string
		want      int
		wantError string // a transport error, instead of a status
	}{
		{"mutual", BaselineClientConfig{CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}, "/v1/hello", 200, ""},
		{"no client certificate", BaselineClientConfig{CAFile: ca.File}, "/v1/hello", 401, ""},
		{"no client certificate, probe", BaselineClientConfig{CAFile: ca.File}, "/healthz", 200, ""},
		// Go's client offers no certificate that the server's CAs did not
		// sign: the server sees none.
		{"another CA's certificate", BaselineClientConfig{CAFile: ca.File, CertFile: strangerCert, KeyFile: strangerKey}, "/v1/hello", 401, ""},
		{"server not trusted", BaselineClientConfig{CertFile: clientCert, KeyFile: clientKey}, "/v1/hello", 0, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.URL = base
			if err := tt.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			client, err := tt.cfg.Client()
			if err != nil {
				t.Fatal(err)
			}
			client.Timeout = 10 * time.Second
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := client.Do(req)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("GET %s: %v, want an error about the %s", tt.path, err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
		})
	}
}

// TestServerPprof: the runtime's profiles are served only with -pprof, and
// only to a caller with the token.
func TestServerPprof(t *testing.T) {
	tests := []struct {
		name       string
		pprof      bool
		token      string
		path       string
		want       int
		wantInBody string
	}{
		{"off", false, testToken, "/debug/pprof/heap?debug=1", http.StatusNotFound, ""},
		{"no token", true, "", "/debug/pprof/heap?debug=1", http.StatusUnauthorized, ""},
		{"heap", true, testToken, "/debug/pprof/heap?debug=1", http.StatusOK, "heap profile"},
		{"goroutines", true, testToken, "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{"index", true, testToken, "/debug/pprof/", http.StatusOK, "Types of profiles available"},
		{"cmdline", true, testToken, "/debug/pprof/cmdline", http.StatusOK, ""},
	}
	servers := map[bool]*testServer{
		false: startServer(t, HTTPConfig{Token: testToken}, nil, apiHandler()),
		true:  startServer(t, HTTPConfig{Token: testToken, Pprof: true}, nil, apiHandler()),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := servers[tt.pprof].get(t, tt.path, tt.token)
			if code != tt.want || !strings.Contains(body, tt.wantInBody) {
				t.Errorf("GET %s: %d %.80q, want %d with %q", tt.path, code, body, tt.want, tt.wantInBody)
			}
		})
	}
}

// TestServerAdminToken: with -admin-token, the admin operations take only
// it, and -token only reads; without it, -token does both.
func TestServerAdminToken(t *testing.T) {
	const adminToken = "fedcba9876543210-admin"
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/read", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "read") })
	api.Handle("POST /v1/change", RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "changed") })))
	tests := []struct {
		name                string
		token, admin        string
		method, path, using string
		want                int
	}{
		{"reader reads", testToken, adminToken, "GET", "/v1/read", testToken, 200},
		{"admin reads", testToken, adminToken, "GET", "/v1/read", adminToken, 200},
		{"reader may not change", testToken, adminToken, "POST", "/v1/change", testToken, 403},
		{"admin changes", testToken, adminToken, "POST", "/v1/change", adminToken, 200},
		{"no token may not change", testToken, adminToken, "POST", "/v1/change", "", 401},
		{"wrong token may not change", testToken, adminToken, "POST", "/v1/change", adminToken + "x", 401},
		{"one token does both", testToken, "", "POST", "/v1/change", testToken, 200},
		{"no tokens: open", "", "", "POST", "/v1/change", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, HTTPConfig{Token: tt.token, AdminToken: tt.admin}, nil, api)
			if code, body, _ := ts.do(t, tt.method, tt.path, tt.using); code != tt.want {
				t.Errorf("%s %s: %d %q, want %d", tt.method, tt.path, code, body, tt.want)
			}
		})
	}
}

// TestServerBasicAuth: a browser sends the token as a basic-auth password
// (any user name), and is asked for it by a Basic challenge.
func TestServerBasicAuth(t *testing.T) {
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/page", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "page") })
	ts := startServer(t, HTTPConfig{Token: testToken}, nil, api)
	for _, tc := range []struct {
		user, password string
		want           int
	}{{"anomalyd", testToken, 200}, {"", testToken, 200}, {"anomalyd", testToken + "x", 401}} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", ts.base+"/v1/page", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(tc.user, tc.password)
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("basic %q:%q: %d, want %d", tc.user, tc.password, resp.StatusCode, tc.want)
		}
		if tc.want == 401 && !slices.Contains(resp.Header.Values("WWW-Authenticate"), `Basic realm="anomalyd"`) {
			t.Errorf("401 challenges %q: no Basic challenge for a browser", resp.Header.Values("WWW-Authenticate"))
		}
	}
}
