package testenv_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

func newRedisClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:        addr,
		DialTimeout: time.Second,
		MaxRetries:  -1, // fail fast while the server is stopped
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestRedisHyperLogLog(t *testing.T) {
	r := testenv.Redis(t)
	rdb := newRedisClient(t, r.Addr())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	// Two keys whose members overlap by half: 1000 + 1000 members, 1500
	// distinct. A multi-key PFCOUNT must merge (1500), not sum (2000).
	add := func(key string, from, to int) {
		members := make([]any, 0, to-from)
		for i := from; i < to; i++ {
			members = append(members, fmt.Sprintf("visitor-%d", i))
		}
		if err := rdb.PFAdd(ctx, key, members...).Err(); err != nil {
			t.Fatalf("PFADD %s: %v", key, err)
		}
	}
	add("hll:a", 0, 1000)
	add("hll:b", 500, 1500)

	tests := []struct {
		name string
		keys []string
		want float64
	}{
		{"one key", []string{"hll:a"}, 1000},
		{"other key", []string{"hll:b"}, 1000},
		{"two keys merge", []string{"hll:a", "hll:b"}, 1500},
		{"missing key", []string{"hll:none"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rdb.PFCount(ctx, tt.keys...).Result()
			if err != nil {
				t.Fatalf("PFCOUNT %v: %v", tt.keys, err)
			}
			// Redis HLL has a 0.81% standard error; 3% is far from the
			// 2000 a summing implementation would give.
			if math.Abs(float64(got)-tt.want) > 0.03*tt.want {
				t.Errorf("PFCOUNT %v = %d, want %v ± 3%%", tt.keys, got, tt.want)
			}
		})
	}
}

func TestRedisStopStart(t *testing.T) {
	r := testenv.Redis(t)
	rdb := newRedisClient(t, r.Addr())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET before stop: %v", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded while the server was stopped")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The same client reconnects on its own.
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
	// Nothing is persisted, so a restart is a data loss.
	if n, err := rdb.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS k after restart = %d, %v; want 0, nil", n, err)
	}
}
