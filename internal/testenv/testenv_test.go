package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"

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

// TestRedisCluster forms a cluster of three masters with a replica each,
// writes through a cluster client, and fails a master over: its replica
// serves the slot with the data written before.
func TestRedisCluster(t *testing.T) {
	c := testenv.RedisCluster(t)
	if n := len(c.Addrs()); n != 6 {
		t.Fatalf("%d nodes, want 6", n)
	}
	ctx := t.Context()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rdb.Close()
	for i := range 100 {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Replication is asynchronous: a master killed right after a write may
	// not have sent it to its replica (pkg/features' TestRedisStoreFailover
	// bounds what the feature store loses so). Here the writes are given
	// time to arrive, to check that the replica serves them.
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	killed, err := c.Failover(ctx, "k7")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failed %s over in %v", killed, time.Since(start))
	// A client that saw the old master reads the slots again (go-redis
	// does it by itself only every 10 s), as the feature store does when
	// a call fails.
	for i := range 100 {
		key := fmt.Sprintf("k%d", i)
		got, err := rdb.Get(ctx, key).Int()
		if err != nil {
			rdb.ReloadState(ctx)
			got, err = rdb.Get(ctx, key).Int()
		}
		if err != nil || got != i {
			t.Fatalf("%s after the failover: %v, %v", key, got, err)
		}
	}
}

// TestClickHouseCluster creates a replicated table on every shard and a
// Distributed table over them with one statement ON CLUSTER, inserts
// through the Distributed table, and finds the rows spread over the
// shards and all of them through it.
func TestClickHouseCluster(t *testing.T) {
	c := testenv.ClickHouseCluster(t)
	ctx := t.Context()
	conn, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		`CREATE TABLE t_local ON CLUSTER anomalyd (k UInt64, v String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/t_local', '{replica}') ORDER BY k`,
		`CREATE TABLE t ON CLUSTER anomalyd AS t_local ENGINE = Distributed(anomalyd, default, t_local, k)`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO t (k, v)")
	if err != nil {
		t.Fatal(err)
	}
	for k := range uint64(100) {
		if err := batch.Append(k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var total uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM t").Scan(&total); err != nil || total != 100 {
		t.Fatalf("%d rows through the Distributed table, %v", total, err)
	}
	for i, s := range c.Servers() {
		one, err := s.Open()
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		err = one.QueryRow(ctx, "SELECT count() FROM t_local").Scan(&n)
		one.Close()
		if err != nil || n == 0 || n == 100 {
			t.Errorf("shard %d holds %d rows (%v): want some of the 100", i+1, n, err)
		}
	}
}
