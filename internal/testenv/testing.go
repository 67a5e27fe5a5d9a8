package testenv

import (
	"bytes"
	"sync"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Redis starts a redis-server for the test and stops it when the test ends.
// It fails the test if the server cannot start.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	r, err := StartRedis(t.Context(), RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, r)
	return r
}

// RedisCluster starts a Redis Cluster of three masters with a replica each
// for the test and stops it when the test ends. It fails the test if the
// cluster cannot form.
func RedisCluster(t testing.TB) *RedisClusterServer {
	t.Helper()
	c, err := StartRedisCluster(t.Context(), RedisClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, c)
	return c
}

// ClickHouse starts a clickhouse-server for the test and stops it when the
// test ends. It fails the test if the server cannot start.
func ClickHouse(t testing.TB) *ClickHouseServer {
	t.Helper()
	c, err := StartClickHouse(t.Context(), ClickHouseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, c)
	return c
}

// ClickHouseConn starts a clickhouse-server for the test, as ClickHouse
// does, and returns it with a native-protocol connection closed when the
// test ends.
func ClickHouseConn(t testing.TB) (*ClickHouseServer, driver.Conn) {
	t.Helper()
	c := ClickHouse(t)
	conn, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, conn
}

// Kafka starts an in-process Kafka broker with the given topics for the
// test and closes it when the test ends.
func Kafka(t testing.TB, topics ...string) *KafkaCluster {
	t.Helper()
	k, err := StartKafka(t.Context(), KafkaOptions{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, k)
	return k
}

func cleanup(t testing.TB, c interface{ Close() error }) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
}

// SyncBuffer is a log sink that a service's goroutines write while the test
// reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ClickHouseCluster starts a ClickHouse cluster of two shards and
// ZooKeeper for the test and stops it when the test ends.
func ClickHouseCluster(t testing.TB) *ClickHouseClusterServer {
	t.Helper()
	c, err := StartClickHouseCluster(t.Context(), ClickHouseClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, c)
	return c
}
