package testenv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

func TestMissingBinaryNamesMakeDeps(t *testing.T) {
	const missing = "/nonexistent/testenv-no-such-server"
	tests := []struct {
		name  string
		start func(context.Context) error
	}{
		{"redis", func(ctx context.Context) error {
			_, err := testenv.StartRedis(ctx, testenv.RedisOptions{Binary: missing})
			return err
		}},
		{"clickhouse", func(ctx context.Context) error {
			_, err := testenv.StartClickHouse(ctx, testenv.ClickHouseOptions{Binary: missing})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := tt.start(ctx)
			if !errors.Is(err, testenv.ErrMissingBinary) {
				t.Fatalf("got error %v, want one wrapping ErrMissingBinary", err)
			}
			for _, want := range []string{missing, "make deps"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestStartFailureShowsServerOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := testenv.StartRedis(ctx, testenv.RedisOptions{Args: []string{"--no-such-directive", "1"}})
	if err == nil {
		t.Fatal("redis-server started with a bad directive")
	}
	// redis-server's own complaint makes the failure diagnosable.
	if !strings.Contains(err.Error(), "Bad directive") {
		t.Errorf("error does not carry the server's output: %v", err)
	}
}
