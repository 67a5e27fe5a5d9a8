package featurestore

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

// TestMain closes the Redis Cluster the tests shared, then checks that
// stores, clients and test servers leave no goroutines behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		if err := shared.cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared is the Redis Cluster of the package's tests: forming one takes
// seconds, so the tests share it and empty it before each use.
var shared struct {
	once    sync.Once
	cluster *testenv.RedisClusterServer
	err     error
}

// clusterClient returns a client of the shared Redis Cluster, emptied.
func clusterClient(t *testing.T) *redis.ClusterClient {
	t.Helper()
	shared.once.Do(func() {
		shared.cluster, shared.err = testenv.StartRedisCluster(t.Context(), testenv.RedisClusterOptions{})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: shared.cluster.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	err := rdb.ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
	if err != nil {
		t.Fatal(err)
	}
	return rdb
}
