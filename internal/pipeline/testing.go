package pipeline

import (
	"cmp"
	"context"
	"testing"
)

// New starts a stack for a test and closes it when the test ends; it fails
// the test if the stack cannot start. An empty cfg.BinDir builds the
// binaries into a temporary directory first (the go build cache makes that
// quick after the first time), and an empty cfg.KafkaAddr is a free port,
// not DefaultKafkaAddr, so that tests can run in parallel.
func New(t testing.TB, cfg Config) *Stack {
	t.Helper()
	if cfg.BinDir == "" {
		cfg.BinDir = t.TempDir()
		if err := Build(t.Context(), cfg.BinDir); err != nil {
			t.Fatal(err)
		}
	}
	cfg.KafkaAddr = cmp.Or(cfg.KafkaAddr, "127.0.0.1:0")
	// Not t.Context() itself: it ends before the cleanups run, and the
	// stack would close under cleanups registered after New.
	s, err := Start(context.WithoutCancel(t.Context()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
