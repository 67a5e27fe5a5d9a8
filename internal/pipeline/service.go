package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ErrNoMetric is wrapped by MetricsValue's error when /metrics has no such
// series, e.g. a labelled counter that has not counted anything yet.
var ErrNoMetric = errors.New("no such metric")

// Service is one of the stack's services, a child process. Its methods are
// safe for concurrent use.
type Service struct {
	name    Name
	bin     string
	args    []string
	env     []string
	addr    string
	logPath string
	token   string
	ready   time.Duration
	stop    time.Duration

	clientOnce sync.Once
	client     *http.Client

	mu sync.Mutex
	p  *process // nil when stopped
}

// process is one run of a service.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Name returns the service's name.
func (s *Service) Name() Name { return s.name }

// Addr returns the host:port of its HTTP server, and URL its base URL.
func (s *Service) Addr() string { return s.addr }
func (s *Service) URL() string  { return "http://" + s.addr }

// LogPath is the file of the service's stdout and stderr, all runs.
func (s *Service) LogPath() string { return s.logPath }

// Args returns the command line after the binary (the secrets are in the
// environment, not here).
func (s *Service) Args() []string { return append([]string(nil), s.args...) }

// Running reports whether the process is running: started and not exited.
func (s *Service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p != nil && !s.p.exited()
}

// Start starts the service, with the same flags, port and consumer group
// each time, and waits until /readyz answers 200 (at most
// Config.ReadyTimeout; ctx bounds the wait, not the process). Starting a
// running service is an error; one that exited on its own can be started
// again.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil && !s.p.exited() {
		return fmt.Errorf("starting %s: already running (pid %d)", s.name, s.p.cmd.Process.Pid)
	}
	s.p = nil
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	offset, _ := log.Seek(0, io.SeekEnd)
	fmt.Fprintf(log, "=== %s start: %s %s\n", time.Now().Format(time.RFC3339), s.bin, strings.Join(s.args, " "))
	// A file, not a pipe: no copying goroutines, and it outlives the run.
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	log.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(ctx, p); err != nil {
		p.kill()
		return fmt.Errorf("starting %s: %w\n--- %s (tail) ---\n%s", s.name, err, s.logPath, tail(s.logPath, offset, 4<<10))
	}
	s.p = p
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits, or the
// ready timeout or ctx ends.
func (s *Service) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.ready)
	defer cancel()
	var last error
	for {
		code, body, err := s.get(ctx, "/readyz")
		switch {
		case err != nil:
			last = err
		case code == http.StatusOK:
			return nil
		default:
			last = fmt.Errorf("/readyz: %d %s", code, strings.TrimSpace(body))
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the service gracefully: SIGTERM, then it flushes, commits and
// exits. After Config.StopTimeout, or when ctx ends, it is killed and Stop
// says so. A non-zero exit status, or a process that had already exited on
// its own (a crash the caller should hear about), is an error too. Stopping
// a stopped service does nothing.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.p
	if p == nil {
		return nil
	}
	s.p = nil
	if p.exited() {
		return fmt.Errorf("stopping %s: it had exited on its own: %v (see %s)", s.name, p.err, s.logPath)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.kill()
		return fmt.Errorf("stopping %s: %w", s.name, err)
	}
	timer := time.NewTimer(s.stop)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.kill()
		return fmt.Errorf("stopping %s: killed, still running %v after SIGTERM (see %s)", s.name, s.stop, s.logPath)
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("stopping %s: killed: %w", s.name, ctx.Err())
	}
	if p.err != nil {
		return fmt.Errorf("stopping %s: %w (see %s)", s.name, p.err, s.logPath)
	}
	return nil
}

// Kill kills the service with SIGKILL, as a crash would: nothing is
// flushed or committed. Killing a stopped service does nothing.
//
// The killed process stays a member of its consumer group until its
// session times out (kafka-go's default, 30 s): the next Start is ready at
// once, but its group join, and so its first events and a graceful Stop
// during the join, wait until then.
func (s *Service) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.p
	if p == nil {
		return nil
	}
	s.p = nil
	if err := p.kill(); err != nil {
		return fmt.Errorf("killing %s: %w", s.name, err)
	}
	return nil
}

// Signal sends sig to the running service (SIGHUP: read the policy
// again); a stopped service is an error.
func (s *Service) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return fmt.Errorf("signalling %s: not running", s.name)
	}
	if err := s.p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signalling %s: %w", s.name, err)
	}
	return nil
}

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// httpClient is the service's client, with its own transport so that
// closing the stack leaves no idle connections behind.
func (s *Service) httpClient() *http.Client {
	s.clientOnce.Do(func() {
		s.client = &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Minute}
	})
	return s.client
}

// closeIdle closes the client's idle connections.
func (s *Service) closeIdle() {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
}

// Do sends a request to the service's HTTP API with its bearer token; path
// starts with '/'. The caller closes the response body.
func (s *Service) Do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", s.name, method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", s.name, method, path, err)
	}
	return resp, nil
}

// get GETs path and returns the status and body.
func (s *Service) get(ctx context.Context, path string) (int, string, error) {
	resp, err := s.Do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("%s GET %s: %w", s.name, path, err)
	}
	return resp.StatusCode, string(b), nil
}

// Metrics are one scrape of /metrics: every sample by its series, the
// metric name followed by its labels as the server wrote them, e.g.
// `anomalyd_detector_events_total` or
// `anomalyd_publisher_dead_letters_total{reason="malformed"}`.
type Metrics map[string]float64

// Value returns the value of name: a series written in full (with
// labels) is looked up as it is; a bare metric name is the sum of all its
// series, so that a labelled counter reads as its total. ok is false when
// there is no such series.
func (m Metrics) Value(name string) (v float64, ok bool) {
	if v, ok := m[name]; ok || strings.ContainsRune(name, '{') {
		return v, ok
	}
	prefix := name + "{"
	for series, x := range m {
		if strings.HasPrefix(series, prefix) {
			v, ok = v+x, true
		}
	}
	return v, ok
}

// Metrics scrapes the service's /metrics.
func (s *Service) Metrics(ctx context.Context) (Metrics, error) {
	code, body, err := s.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s GET /metrics: status %d", s.name, code)
	}
	m, err := parseMetrics(body)
	if err != nil {
		return nil, fmt.Errorf("%s /metrics: %w", s.name, err)
	}
	return m, nil
}

// MetricsValue scrapes /metrics and returns the value of name, as
// Metrics.Value reads it. A missing series is an error wrapping ErrNoMetric.
func (s *Service) MetricsValue(ctx context.Context, name string) (float64, error) {
	m, err := s.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	v, ok := m.Value(name)
	if !ok {
		return 0, fmt.Errorf("%s /metrics: %s: %w", s.name, name, ErrNoMetric)
	}
	return v, nil
}

// parseMetrics reads the Prometheus text format with the Prometheus
// parser. Counters, gauges and untyped samples are kept by series;
// histograms and summaries by their _count and _sum.
func parseMetrics(text string) (Metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	m := make(Metrics)
	for name, f := range families {
		for _, metric := range f.GetMetric() {
			var labels []string
			for _, l := range metric.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			series := func(name string) string {
				if len(labels) == 0 {
					return name
				}
				return name + "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case metric.Counter != nil:
				m[series(name)] = metric.GetCounter().GetValue()
			case metric.Gauge != nil:
				m[series(name)] = metric.GetGauge().GetValue()
			case metric.Untyped != nil:
				m[series(name)] = metric.GetUntyped().GetValue()
			case metric.Histogram != nil:
				m[series(name+"_count")] = float64(metric.GetHistogram().GetSampleCount())
				m[series(name+"_sum")] = metric.GetHistogram().GetSampleSum()
			case metric.Summary != nil:
				m[series(name+"_count")] = float64(metric.GetSummary().GetSampleCount())
				m[series(name+"_sum")] = metric.GetSummary().GetSampleSum()
			}
		}
	}
	return m, nil
}

// tail returns at most limit bytes of path from offset on, without
// anything before offset (an earlier run's output).
func tail(path string, offset, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	offset = max(offset, fi.Size()-limit)
	b, err := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
