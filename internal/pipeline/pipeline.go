// Package pipeline starts and stops the whole local anomalyd stack, for
// `make demo` and end-to-end tests: a redis-server and a clickhouse-server
// (internal/testenv: real servers, user space, temporary directories), an
// in-process Kafka-protocol broker with the pipeline's topics, and the three
// services (baseline, detector, publisher) as child processes of built
// binaries, each on its own loopback HTTP port. Everything listens on
// 127.0.0.1 only.
//
// Typical use:
//
//	bin := t.TempDir()
//	if err := pipeline.Build(ctx, bin); err != nil { ... }
//	st, err := pipeline.Start(ctx, pipeline.Config{BinDir: bin, KafkaAddr: "127.0.0.1:0"})
//	if err != nil { ... }
//	defer st.Close()
//	// produce to st.Brokers(), topic pipeline.TopicRequests ...
//	n, err := st.Service(pipeline.Detector).MetricsValue(ctx, "anomalyd_detector_events_total")
//
// Tests can use New, which builds the binaries, starts the stack on a free
// Kafka port and closes it when the test ends.
//
// The services share one identity secret, one bearer token (both passed in
// the environment, as ANOMALYD_IDENTITY_SECRET and ANOMALYD_TOKEN, because
// command lines are visible to every user), the window and identity flags,
// and the addresses of Kafka, Redis and ClickHouse. Per-service extra flags
// (Config.Flags) come last on the command line, so they override the shared
// ones. Inherited ANOMALYD_* variables are not passed on: the stack is the
// same whatever the caller's environment.
//
// Each service writes its stdout and stderr to NAME.log in LogDir, appended
// across restarts, each run starting with a line that shows its command line.
// A Service can be stopped gracefully (SIGTERM), killed (SIGKILL) and started
// again with the same flags, port and consumer group, to test recovery.
package pipeline

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

// The pipeline's Kafka topics, created with Config.Partitions partitions
// each. They are the services' default topic names.
const (
	TopicRequests   = "requests"
	TopicScores     = "scores"
	TopicDetections = "detections"
	TopicDeadLetter = "deadletter"
)

// Defaults of Config.
const (
	// DefaultKafkaAddr is where the demo's broker listens, Kafka's usual
	// port, so that kcat and other clients find it without flags.
	DefaultKafkaAddr = "127.0.0.1:9092"
	// DefaultPartitions: enough for a consumer group to spread, few
	// enough for quick group joins.
	DefaultPartitions = 4
	// DefaultReadyTimeout bounds each service's start until /readyz
	// answers 200.
	DefaultReadyTimeout = 60 * time.Second
	// DefaultStopTimeout bounds a graceful stop before SIGKILL. Above the
	// services' own -shutdown-timeout (30 s) would be pointless in tests;
	// below it, a slow flush is cut short, which Stop reports.
	DefaultStopTimeout = 30 * time.Second
	// InterruptStopTimeout bounds the graceful stop of the services when
	// the stack closes because Start's context ended (Ctrl-C): the
	// terminal's SIGINT has usually stopped Redis and ClickHouse already,
	// so a service's flush could only wait for them.
	InterruptStopTimeout = 5 * time.Second
)

// Name names one of the three services; it is also its binary's name.
type Name string

// The services, in the order Start starts them.
const (
	Baseline  Name = "baseline"
	Detector  Name = "detector"
	Publisher Name = "publisher"
)

// Names lists the services.
func Names() []Name { return []Name{Baseline, Detector, Publisher} }

// Config says what stack to start. Only BinDir is required.
type Config struct {
	// BinDir holds the baseline, detector and publisher binaries (see
	// Build).
	BinDir string
	// Dir holds the logs and the Redis and ClickHouse directories.
	// Default: a new temporary directory, removed by Close unless KeepDir.
	Dir     string
	KeepDir bool
	// KafkaAddr is the broker's listen address. The in-process broker
	// listens on loopback only, so the host must be 127.0.0.1, localhost
	// or empty; port 0 picks a free port (what tests should use). Default
	// DefaultKafkaAddr.
	KafkaAddr string
	// Partitions of every topic. Default DefaultPartitions.
	Partitions int32
	// IdentitySecret keys visitor ids (at least 16 bytes) and Token is the
	// services' bearer token (at least 16 characters). Default: random;
	// read them back with Stack.IdentitySecret and Stack.Token.
	IdentitySecret string
	Token          string
	// Identity is the visitor identity mode: ip, ip+ua, ja3 or ja4.
	// Default: the services' default (ip).
	Identity string
	// WindowBuckets and WindowBucketWidth set the window of the baseline
	// service and the detector; zero keeps the services' defaults.
	WindowBuckets     int
	WindowBucketWidth time.Duration
	// Flags are extra command-line flags per service, appended after the
	// shared ones (so they win), e.g. {Baseline: {"-refresh", "1h"}}.
	Flags map[Name][]string
	// ReadyTimeout bounds each start of a service until /readyz answers.
	// Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout bounds a graceful Stop before the process is killed.
	// Default DefaultStopTimeout.
	StopTimeout time.Duration
}

// Stack is a running local pipeline. Its methods are safe for concurrent
// use.
type Stack struct {
	cfg       Config
	dir       string
	removeDir bool
	logDir    string

	redis    *testenv.RedisServer
	ch       *testenv.ClickHouseServer
	kafka    *testenv.KafkaCluster
	services map[Name]*Service

	mu       sync.Mutex
	replicas []*Service // detectors added by AddDetector

	closeOnce sync.Once
	closeErr  error
	stopWatch func() bool // unregisters the context watch
}

// Start starts the stack and returns once every service answers /readyz.
// The stack runs until Close, or until ctx is done (Ctrl-C in the demo),
// which closes it too, giving the services InterruptStopTimeout to stop.
// If anything fails to start, what did start is stopped again.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("starting the pipeline: %w", err)
	}
	kafkaPort, err := loopbackPort(cfg.KafkaAddr)
	if err != nil {
		return nil, fmt.Errorf("starting the pipeline: -kafka %q: %w", cfg.KafkaAddr, err)
	}
	for _, n := range Names() {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, string(n))); err != nil {
			return nil, fmt.Errorf("starting the pipeline: the %s binary: %w (build it with pipeline.Build)", n, err)
		}
	}
	s := &Stack{cfg: cfg, services: make(map[Name]*Service)}
	if cfg.Dir != "" {
		s.dir = cfg.Dir
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return nil, fmt.Errorf("starting the pipeline: %w", err)
		}
	} else {
		if s.dir, err = os.MkdirTemp("", "anomalyd-pipeline-"); err != nil {
			return nil, fmt.Errorf("starting the pipeline: %w", err)
		}
		s.removeDir = !cfg.KeepDir
	}
	s.logDir = filepath.Join(s.dir, "logs")
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		s.Close()
		return nil, fmt.Errorf("starting the pipeline: %w", err)
	}

	// The three servers are independent; ClickHouse takes the longest
	// (2-3 s), so start them together.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		s.redis, err = testenv.StartRedis(gctx, testenv.RedisOptions{Dir: filepath.Join(s.dir, "redis")})
		return err
	})
	g.Go(func() (err error) {
		s.ch, err = testenv.StartClickHouse(gctx, testenv.ClickHouseOptions{Dir: filepath.Join(s.dir, "clickhouse")})
		return err
	})
	g.Go(func() (err error) {
		s.kafka, err = testenv.StartKafka(gctx, testenv.KafkaOptions{
			Topics:     []string{TopicRequests, TopicScores, TopicDetections, TopicDeadLetter},
			Partitions: cfg.Partitions,
			Port:       kafkaPort,
		})
		return err
	})
	if err := g.Wait(); err != nil {
		s.Close()
		return nil, fmt.Errorf("starting the pipeline: %w", err)
	}

	// Ports first, because the detector needs the baseline service's URL.
	// Another process could take one before its service binds it; the
	// start then fails with the service's "address already in use".
	for _, n := range Names() {
		port, err := testenv.FreePort()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("starting the pipeline: %w", err)
		}
		s.services[n] = &Service{
			name:    n,
			bin:     filepath.Join(cfg.BinDir, string(n)),
			addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			logPath: filepath.Join(s.logDir, string(n)+".log"),
			token:   cfg.Token,
			ready:   cfg.ReadyTimeout,
			stop:    cfg.StopTimeout,
		}
	}
	for _, n := range Names() {
		svc := s.services[n]
		svc.args = s.args(n)
		svc.env = s.env()
	}
	g, gctx = errgroup.WithContext(ctx)
	for _, n := range Names() {
		g.Go(func() error { return s.services[n].Start(gctx) })
	}
	if err := g.Wait(); err != nil {
		s.Close()
		return nil, fmt.Errorf("starting the pipeline: %w", err)
	}
	s.stopWatch = context.AfterFunc(ctx, func() {
		ctx, cancel := context.WithTimeout(context.Background(), InterruptStopTimeout)
		defer cancel()
		s.close(ctx)
	})
	return s, nil
}

// fill sets the defaults and checks what Start cannot default.
func (c *Config) fill() error {
	if c.BinDir == "" {
		return errors.New("no BinDir: the directory of the service binaries is required")
	}
	c.KafkaAddr = cmp.Or(c.KafkaAddr, DefaultKafkaAddr)
	c.Partitions = cmp.Or(c.Partitions, DefaultPartitions)
	c.ReadyTimeout = cmp.Or(c.ReadyTimeout, DefaultReadyTimeout)
	c.StopTimeout = cmp.Or(c.StopTimeout, DefaultStopTimeout)
	var err error
	if c.IdentitySecret == "" {
		if c.IdentitySecret, err = randomHex(16); err != nil {
			return err
		}
	}
	if c.Token == "" {
		if c.Token, err = randomHex(16); err != nil {
			return err
		}
	}
	for n := range c.Flags {
		switch n {
		case Baseline, Detector, Publisher:
		default:
			return fmt.Errorf("Flags: no service named %q", n)
		}
	}
	return nil
}

// args returns service n's command line: the shared flags it registers
// (the services refuse flags they do not know), then Config.Flags[n].
func (s *Stack) args(n Name) []string {
	c := s.cfg
	args := []string{"-listen", s.services[n].addr, "-brokers", strings.Join(s.Brokers(), ",")}
	switch n {
	case Baseline, Publisher:
		args = append(args, "-clickhouse", s.ch.Addr())
	case Detector:
		args = append(args, "-redis", s.redis.Addr(), "-baseline-url", s.services[Baseline].URL())
	}
	if n == Baseline || n == Detector {
		if c.Identity != "" {
			args = append(args, "-identity", c.Identity)
		}
		if c.WindowBuckets != 0 {
			args = append(args, "-window-buckets", strconv.Itoa(c.WindowBuckets))
		}
		if c.WindowBucketWidth != 0 {
			args = append(args, "-window-bucket-width", c.WindowBucketWidth.String())
		}
	}
	return append(args, c.Flags[n]...)
}

// env returns the services' environment: the caller's without ANOMALYD_*
// variables, plus the secrets.
func (s *Stack) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ANOMALYD_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"ANOMALYD_IDENTITY_SECRET="+s.cfg.IdentitySecret,
		"ANOMALYD_TOKEN="+s.cfg.Token)
}

// Service returns the named service; it panics on an unknown name, a
// programming error.
func (s *Stack) Service(n Name) *Service {
	svc, ok := s.services[n]
	if !ok {
		panic(fmt.Sprintf("pipeline: no service named %q", n))
	}
	return svc
}

// AddDetector starts one more detector, a replica in the first one's
// consumer group with the same flags on a port of its own, logging to
// detector-N.log, and returns it once it answers /readyz. Close stops it
// with the others.
func (s *Stack) AddDetector(ctx context.Context) (*Service, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	first := s.services[Detector]
	s.mu.Lock()
	n := len(s.replicas) + 2
	svc := &Service{
		name: Detector, bin: first.bin, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		logPath: filepath.Join(s.logDir, fmt.Sprintf("%s-%d.log", Detector, n)),
		token:   first.token, ready: first.ready, stop: first.stop, env: first.env,
	}
	svc.args = append([]string(nil), first.args...)
	for i := range svc.args {
		if svc.args[i] == "-listen" && i+1 < len(svc.args) {
			svc.args[i+1] = svc.addr
		}
	}
	s.replicas = append(s.replicas, svc)
	s.mu.Unlock()
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	return svc, nil
}

// Brokers returns the Kafka bootstrap addresses.
func (s *Stack) Brokers() []string { return s.kafka.Brokers() }

// Kafka, Redis and ClickHouse return the servers, e.g. for kfake's fault
// injection, Redis or ClickHouse Stop and Start, or a ClickHouse query.
func (s *Stack) Kafka() *testenv.KafkaCluster          { return s.kafka }
func (s *Stack) Redis() *testenv.RedisServer           { return s.redis }
func (s *Stack) ClickHouse() *testenv.ClickHouseServer { return s.ch }

// IdentitySecret is the secret that keys visitor ids: with it,
// features.NewIdentity computes the ids the services use.
func (s *Stack) IdentitySecret() string { return s.cfg.IdentitySecret }

// Token is the services' bearer token (Service.Do sends it).
func (s *Stack) Token() string { return s.cfg.Token }

// Dir is the stack's directory; LogDir holds the services' logs. Redis's
// and ClickHouse's logs are in Dir's redis and clickhouse/log directories.
func (s *Stack) Dir() string    { return s.dir }
func (s *Stack) LogDir() string { return s.logDir }

// Close stops the services (gracefully, then by SIGKILL after
// Config.StopTimeout), then the broker, ClickHouse and Redis, and removes
// the stack's directory if Start made it and KeepDir is false. It returns
// every error met on the way; calling it again returns the same result.
func (s *Stack) Close() error { return s.close(context.Background()) }

// close is Close; the services are killed when ctx ends.
func (s *Stack) close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.stopWatch != nil {
			s.stopWatch()
		}
		var errs []error
		// The services stop first, while the servers they flush to are
		// still up, and in parallel: each waits for its own flush.
		var wg sync.WaitGroup
		var mu sync.Mutex
		s.mu.Lock()
		all := slices.Collect(maps.Values(s.services))
		all = append(all, s.replicas...)
		s.mu.Unlock()
		for _, svc := range all {
			wg.Go(func() {
				if err := svc.Stop(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, svc := range all {
			svc.closeIdle()
		}
		if s.kafka != nil {
			errs = append(errs, s.kafka.Close())
		}
		if s.ch != nil {
			errs = append(errs, s.ch.Close())
		}
		if s.redis != nil {
			errs = append(errs, s.redis.Close())
		}
		if s.removeDir {
			if err := os.RemoveAll(s.dir); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", s.dir, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("closing the pipeline: %w", err)
		}
	})
	return s.closeErr
}

// Build builds the three service binaries into dir with the go command
// (from PATH), for tests and tools that start a Stack. The working
// directory must be inside the module, as a test's is.
func Build(ctx context.Context, dir string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range Names() {
		args = append(args, "github.com/anomalyd/anomalyd/cmd/"+string(n))
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the services (go %s): %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// loopbackPort returns the port of addr, a listen address the in-process
// broker can serve: it always binds 127.0.0.1.
func loopbackPort(addr string) (int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	switch host {
	case "", "127.0.0.1", "localhost":
	default:
		return 0, fmt.Errorf("host %q: the in-process broker listens on 127.0.0.1 only", host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("port %q is not a port number", portStr)
	}
	return port, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
