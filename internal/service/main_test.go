package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

// testService is a small service built the way cmd/baseline and the others
// are: config groups, Validate, and a Run that serves HTTP until its
// context is done.
type testService struct {
	kafka KafkaConfig
	http  HTTPConfig

	ran  bool
	run  func(ctx context.Context, logger *slog.Logger) error
	addr chan string // the HTTP address once serving, if run is nil
}

func (s *testService) service() Service {
	return Service{
		Name:        "testsvc",
		Description: "Testsvc does nothing useful, carefully.",
		RegisterFlags: func(fs *flag.FlagSet) {
			s.kafka.RegisterFlags(fs, TopicRequests)
			s.http.RegisterFlags(fs, "127.0.0.1:0")
		},
		Validate: func() error {
			if err := s.kafka.Validate(); err != nil {
				return err
			}
			return s.http.Validate()
		},
		Run: func(ctx context.Context, logger *slog.Logger) error {
			s.ran = true
			if s.run != nil {
				return s.run(ctx, logger)
			}
			return s.serve(ctx, logger)
		},
	}
}

// serve is a service's Run: start, wait for the signal, drain, stop.
func (s *testService) serve(ctx context.Context, logger *slog.Logger) error {
	srv, err := NewServer(s.http, NewRegistry(), nil, nil, logger)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	if s.addr != nil {
		s.addr <- srv.Addr().String()
	}
	<-ctx.Done()
	// Here a real service stops reading, flushes and commits.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func TestMainExitCodes(t *testing.T) {
	cancelled := func() context.Context {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		return ctx
	}
	tests := []struct {
		name    string
		ctx     func() context.Context
		args    []string
		env     map[string]string
		run     func(ctx context.Context, logger *slog.Logger) error
		want    int
		wantRan bool
		wantOut []string
		wantNot []string
	}{
		{
			name: "help", args: []string{"-h"}, want: ExitOK,
			wantOut: []string{"Usage: testsvc [flags]", "Testsvc does nothing useful", "(env ANOMALYD_BROKERS)", "(env ANOMALYD_LOG_LEVEL)", "-requests-topic"},
			wantNot: []string{"-scores-topic", "level=INFO"},
		},
		{
			name: "unknown flag", args: []string{"-nope"}, want: ExitUsage,
			wantOut: []string{"flag provided but not defined: -nope", "Usage: testsvc"},
		},
		{
			name: "bad environment variable", env: map[string]string{"ANOMALYD_LOG_LEVEL": "loud"}, want: ExitUsage,
			wantOut: []string{"ANOMALYD_LOG_LEVEL", `"loud"`},
		},
		{
			name: "invalid flag value", args: []string{"-brokers", "x"}, want: ExitUsage,
			wantOut: []string{`testsvc: -brokers: "x" is not host:port`},
		},
		{
			name: "invalid value from the environment", env: map[string]string{"ANOMALYD_LOG_FORMAT": "xml"}, want: ExitUsage,
			wantOut: []string{`-log-format: "xml"`},
		},
		{
			name: "positional argument", args: []string{"extra"}, want: ExitUsage,
			wantOut: []string{`unexpected argument "extra"`},
		},
		{
			name: "run fails", want: ExitError, wantRan: true,
			run:     func(context.Context, *slog.Logger) error { return errors.New("clickhouse: connection refused") },
			wantOut: []string{"level=ERROR", "service failed", "clickhouse: connection refused", "service=testsvc"},
		},
		{
			name: "run returns early", want: ExitError, wantRan: true,
			run:     func(context.Context, *slog.Logger) error { return nil },
			wantOut: []string{"returned before shutdown was requested"},
		},
		{
			name: "clean shutdown", ctx: cancelled, want: ExitOK, wantRan: true,
			run:     func(ctx context.Context, _ *slog.Logger) error { <-ctx.Done(); return nil },
			wantOut: []string{"msg=starting", `msg="shutting down"`, "msg=stopped"},
		},
		{
			name: "cancellation error after shutdown is clean", ctx: cancelled, want: ExitOK, wantRan: true,
			run: func(ctx context.Context, _ *slog.Logger) error {
				<-ctx.Done()
				return fmt.Errorf("committing offsets: %w", ctx.Err())
			},
		},
		{
			name: "other error after shutdown fails", ctx: cancelled, want: ExitError, wantRan: true,
			run: func(ctx context.Context, _ *slog.Logger) error {
				<-ctx.Done()
				return errors.New("flush: broker gone")
			},
			wantOut: []string{"flush: broker gone"},
		},
		{
			name: "json logs", ctx: cancelled, args: []string{"-log-format", "json"}, want: ExitOK, wantRan: true,
			run:     func(ctx context.Context, _ *slog.Logger) error { <-ctx.Done(); return nil },
			wantOut: []string{`"msg":"stopped"`, `"service":"testsvc"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			s := &testService{run: tt.run}
			var out testenv.SyncBuffer
			got := Main(ctx, s.service(), tt.args, env(tt.env), &out)
			if got != tt.want {
				t.Errorf("exit code %d, want %d; output:\n%s", got, tt.want, out.String())
			}
			if s.ran != tt.wantRan {
				t.Errorf("ran = %v, want %v", s.ran, tt.wantRan)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			for _, not := range tt.wantNot {
				if strings.Contains(out.String(), not) {
					t.Errorf("output has %q:\n%s", not, out.String())
				}
			}
		})
	}
}

// TestMainSIGTERM sends the process a real SIGTERM while a service serves
// HTTP, and checks for a clean exit. Main's handler is installed before
// Run, so the signal cannot kill the test binary.
func TestMainSIGTERM(t *testing.T) {
	s := &testService{addr: make(chan string, 1)}
	var out testenv.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Main(t.Context(), s.service(), nil, env(map[string]string{"ANOMALYD_LISTEN": "127.0.0.1:0"}), &out)
	}()

	var addr string
	select {
	case addr = <-s.addr:
	case c := <-code:
		t.Fatalf("Main returned %d before serving:\n%s", c, out.String())
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != ExitOK {
			t.Errorf("exit code %d after SIGTERM, want 0:\n%s", c, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Main did not return after SIGTERM:\n%s", out.String())
	}
	if !strings.Contains(out.String(), `cause="terminated signal received"`) {
		t.Errorf("the log does not say why it shut down:\n%s", out.String())
	}
}
