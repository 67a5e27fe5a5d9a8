package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyTimeout bounds one readiness check. It stays at Kubernetes' default
// probe timeout (1s) so that a slow dependency shows up as a 503 with its
// reason rather than as a probe timeout with none.
const ReadyTimeout = time.Second

// Server timeouts. A slow or idle client must not hold a connection
// forever; there is no write timeout because an API may stream large
// responses (baselines).
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// NewRegistry returns a registry with the Go runtime, process and build
// information collectors, which every service exports.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

type serverMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newServerMetrics(r prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "anomalyd_http_requests_total",
			Help: "HTTP requests answered, by handler (api, metrics, healthz, readyz) and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "anomalyd_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by handler.",
			Buckets: prometheus.DefBuckets,
		}, []string{"handler"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("registering HTTP server metrics: %w", err)
		}
	}
	return m, nil
}

func (m *serverMetrics) instrument(handler string, h http.Handler) http.Handler {
	l := prometheus.Labels{"handler": handler}
	return promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(l), h))
}

// Server is a service's HTTP server: its API, /metrics, /healthz and
// /readyz on one listener (see the package doc). Start it once, then call
// Shutdown.
type Server struct {
	cfg    HTTPConfig
	logger *slog.Logger
	ready  func(context.Context) error
	// tokenSum and adminSum are the SHA-256 sums of the tokens.
	tokenSum, adminSum [sha256.Size]byte
	live               atomic.Pointer[func(context.Context) error]
	srv                *http.Server

	ln       net.Listener
	stopping <-chan struct{} // closed when the context given to Start is done
	served   chan error      // the result of Serve

	lastReady atomic.Int32 // last readiness result: 0 none yet, readyYes or readyNo

	shutdownOnce sync.Once
	shutdownErr  error
}

// NewServer builds a server for a validated config. reg is served on
// /metrics and receives the server's own metrics. ready reports whether
// the service's dependencies are usable; nil means always ready. api
// serves every other path; nil answers 404. A nil logger discards.
func NewServer(cfg HTTPConfig, reg *prometheus.Registry, ready func(context.Context) error, api http.Handler, logger *slog.Logger) (*Server, error) {
	if reg == nil {
		return nil, errors.New("http server: a metrics registry is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	if api == nil {
		api = http.NotFoundHandler()
	}
	m, err := newServerMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, ready: ready, tokenSum: sha256.Sum256([]byte(cfg.Token)), adminSum: sha256.Sum256([]byte(cfg.AdminToken))}
	auth := s.authenticate
	mux := http.NewServeMux()
	mux.Handle("/healthz", m.instrument("healthz", http.HandlerFunc(s.healthz)))
	mux.Handle("/readyz", m.instrument("readyz", http.HandlerFunc(s.readyz)))
	// /metrics is authenticated too: label values name sites, and a
	// scraper can carry a token as easily as any other client.
	mux.Handle("/metrics", m.instrument("metrics", auth(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}))))
	if cfg.Pprof {
		// Registered on this mux only: the package's import also registers
		// them on http.DefaultServeMux, which no service serves.
		mux.Handle("/debug/pprof/", m.instrument("pprof", auth(http.HandlerFunc(pprof.Index))))
		mux.Handle("/debug/pprof/cmdline", m.instrument("pprof", auth(http.HandlerFunc(pprof.Cmdline))))
		mux.Handle("/debug/pprof/profile", m.instrument("pprof", auth(http.HandlerFunc(pprof.Profile))))
		mux.Handle("/debug/pprof/symbol", m.instrument("pprof", auth(http.HandlerFunc(pprof.Symbol))))
		mux.Handle("/debug/pprof/trace", m.instrument("pprof", auth(http.HandlerFunc(pprof.Trace))))
	}
	mux.Handle("/", m.instrument("api", auth(api)))
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Start listens on the configured address and serves in the background.
// When ctx is done /readyz answers 503, so that load balancers stop sending
// traffic while the service drains; everything else keeps being served, and
// requests in flight are not cancelled, until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	if s.ln != nil {
		return errors.New("http server: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("http server: %w", err)
	}
	tlsOn := s.cfg.TLSCert != ""
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http server: loading -tls-cert and -tls-key: %w", err)
		}
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if s.cfg.TLSClientCA != "" {
			pool, err := certPool(s.cfg.TLSClientCA)
			if err != nil {
				ln.Close()
				return fmt.Errorf("http server: -tls-client-ca: %w", err)
			}
			// Verified if given; required by authenticate, so that the
			// health checks stay open to probes that have none.
			s.srv.TLSConfig.ClientCAs, s.srv.TLSConfig.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
	}
	s.ln, s.stopping, s.served = ln, ctx.Done(), make(chan error, 1)
	if s.cfg.Token == "" {
		s.logger.Warn("http server: no -token set, every endpoint is open to anyone who can reach it", "addr", ln.Addr().String())
	}
	s.logger.Info("http server listening", "addr", ln.Addr().String(), "tls", tlsOn)
	go func() {
		var err error
		if tlsOn {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped serving", "err", err)
		}
		s.served <- err
	}()
	return nil
}

// Addr is the address the server listens on, useful with port 0; nil
// before Start.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting connections and waits for requests in flight
// until ctx is done; then it closes the remaining connections and returns
// ctx's error. It also returns an error that had stopped serving early.
// Later calls return the first one's result.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	s.shutdownOnce.Do(func() {
		err := s.srv.Shutdown(ctx)
		if err != nil {
			s.srv.Close()
			err = fmt.Errorf("http server: graceful shutdown: %w", err)
		}
		if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("http server: serving: %w", serr))
		}
		s.shutdownErr = err
	})
	return s.shutdownErr
}

const (
	readyYes = 1
	readyNo  = 2
)

// SetLive makes /healthz fail while live does (Progress.Live): the
// process is up but not doing its work.
func (s *Server) SetLive(live func(context.Context) error) { s.live.Store(&live) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if live := s.live.Load(); live != nil {
		if err := (*live)(r.Context()); err != nil {
			s.logger.Warn("failing liveness", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	select {
	case <-s.stopping:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "shutting down")
		return
	default:
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	err := s.ready(ctx)
	// Probes come every few seconds; logging only changes keeps the log
	// readable.
	now := int32(readyYes)
	if err != nil {
		now = readyNo
	}
	if s.lastReady.Swap(now) != now {
		if err != nil {
			s.logger.Warn("not ready", "err", err)
		} else {
			s.logger.Info("ready")
		}
	}
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		// What failed (an address, a driver's message) is for the
		// operators: probes need only the status.
		if s.roleOf(r) == roleNone {
			fmt.Fprintln(w, "not ready")
			return
		}
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// role is what a request's bearer token allows.
type role int

const (
	roleNone   role = iota // no valid token
	roleReader             // -token
	roleAdmin              // -admin-token, or -token when there is none
)

type roleKey struct{}

// roleOf returns the role of a request's token: the admin token's, the
// token's, or none. Without any token configured every request is an
// admin's. The token comes as a bearer token, or as the password of HTTP
// basic authentication (any user name), which is what a browser can send
// for the baseline service's pages. It compares SHA-256 sums so that the
// constant-time comparison does not reveal the tokens' lengths either.
func (s *Server) roleOf(r *http.Request) role {
	if s.cfg.Token == "" {
		return roleAdmin
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case !ok:
		return roleNone
	case strings.EqualFold(scheme, "Basic"):
		if _, password, ok := r.BasicAuth(); ok {
			token = password
			break
		}
		return roleNone
	case !strings.EqualFold(scheme, "Bearer"):
		return roleNone
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if s.cfg.AdminToken != "" && subtle.ConstantTimeCompare(got[:], s.adminSum[:]) == 1 {
		return roleAdmin
	}
	if subtle.ConstantTimeCompare(got[:], s.tokenSum[:]) == 1 {
		if s.cfg.AdminToken == "" {
			return roleAdmin
		}
		return roleReader
	}
	return roleNone
}

// authenticate lets a request through only with a valid bearer token
// (-token or -admin-token), and with -tls-client-ca a verified client
// certificate, noting its role for RequireAdmin.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.TLSClientCA != "" && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			http.Error(w, "a client certificate signed by -tls-client-ca is required", http.StatusUnauthorized)
			return
		}
		ro := s.roleOf(r)
		if ro == roleNone {
			if scheme, _, ok := strings.Cut(r.Header.Get("Authorization"), " "); !ok || !strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "Basic") {
				unauthorized(w, `Bearer realm="anomalyd"`, "bearer token required")
			} else {
				unauthorized(w, `Bearer realm="anomalyd", error="invalid_token"`, "invalid bearer token")
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), roleKey{}, ro)))
	})
}

// RequireAdmin refuses a request of the API that the Server let through
// with the read token only: the operations that change what a service
// does, such as a rebuild, need the admin token (-admin-token, or -token
// when there is none). A handler served without a Server has no
// authentication at all, and RequireAdmin adds none.
func RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ro, ok := r.Context().Value(roleKey{}).(role); ok && ro != roleAdmin {
			w.Header().Set("WWW-Authenticate", `Bearer realm="anomalyd", error="insufficient_scope"`)
			http.Error(w, "this operation needs the -admin-token", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter, challenge, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Add("WWW-Authenticate", `Basic realm="anomalyd"`) // a browser asks for the token
	http.Error(w, msg, http.StatusUnauthorized)
}
