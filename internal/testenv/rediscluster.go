package testenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisClusterOptions configures StartRedisCluster. The zero value is
// three masters with a replica each.
type RedisClusterOptions struct {
	// Masters is the number of masters, at least 3 (Redis Cluster's
	// minimum). Default 3.
	Masters int
	// Replicas is the number of replicas of each master. Default 1; -1
	// for none.
	Replicas int
	// Dir holds every node's directory. Default: a new temporary
	// directory that Close removes.
	Dir string
	// StartTimeout bounds the start of each node and the cluster's
	// forming. Default 20s.
	StartTimeout time.Duration
}

// RedisClusterServer is a Redis Cluster of redis-server child processes on
// loopback ports, made with redis-cli --cluster create.
type RedisClusterServer struct {
	nodes     []*RedisServer
	dir       string
	removeDir bool
	timeout   time.Duration
}

// StartRedisCluster starts the nodes, joins them into a cluster whose
// every slot is served, with each master's replicas in sync, and returns
// it. A node's cluster bus listens on its port plus 10000, which must be
// free too.
func StartRedisCluster(ctx context.Context, opts RedisClusterOptions) (*RedisClusterServer, error) {
	masters, replicas := cmp.Or(opts.Masters, 3), cmp.Or(opts.Replicas, 1)
	if replicas < 0 {
		replicas = 0
	}
	if masters < 3 {
		return nil, fmt.Errorf("starting a Redis Cluster: %d masters, at least 3 needed", masters)
	}
	cli, err := findBinary("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("starting a Redis Cluster: %w", err)
	}
	dir, removeDir, err := dataDir(opts.Dir, "testenv-redis-cluster-")
	if err != nil {
		return nil, fmt.Errorf("starting a Redis Cluster: %w", err)
	}
	c := &RedisClusterServer{dir: dir, removeDir: removeDir, timeout: cmp.Or(opts.StartTimeout, 20*time.Second)}
	fail := func(err error) (*RedisClusterServer, error) {
		c.Close()
		return nil, fmt.Errorf("starting a Redis Cluster: %w", err)
	}
	for i := range masters * (1 + replicas) {
		port, err := clusterPort()
		if err != nil {
			return fail(err)
		}
		n, err := StartRedis(ctx, RedisOptions{
			Dir: filepath.Join(dir, "node-"+strconv.Itoa(i)), Port: port, StartTimeout: c.timeout,
			// A short node timeout makes failovers take seconds; a
			// diskless sync without delay has replicas in sync at once.
			Args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0"},
		})
		if err != nil {
			return fail(err)
		}
		c.nodes = append(c.nodes, n)
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out))
	}
	if err := c.waitHealthy(cctx, masters, replicas); err != nil {
		return fail(err)
	}
	return c, nil
}

// clusterPort returns a free loopback port whose cluster bus port (plus
// 10000) is free too.
func clusterPort() (int, error) {
	for range 50 {
		p, err := FreePort()
		if err != nil {
			return 0, err
		}
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("no free port with a free cluster bus port")
}

func (c *RedisClusterServer) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Addr())
	}
	return out
}

// Addrs are the addresses of every node started, as seeds for a cluster
// client; a node stopped by Failover is still among them.
func (c *RedisClusterServer) Addrs() []string { return c.addrs() }

// Dir is the directory of the nodes' directories.
func (c *RedisClusterServer) Dir() string { return c.dir }

// waitHealthy waits until every running node says the cluster is ok and
// there are masters masters, each with replicas replicas in sync.
func (c *RedisClusterServer) waitHealthy(ctx context.Context, masters, replicas int) error {
	var last error
	for {
		if last = c.healthy(ctx, masters, replicas); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster is not healthy: %w", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *RedisClusterServer) healthy(ctx context.Context, masters, replicas int) error {
	synced := 0
	seenMasters := 0
	for _, n := range c.nodes {
		if !n.srv.running() {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		info, err := rdb.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("%s: cluster_state not ok", n.Addr())
		}
		var repl string
		if err == nil {
			repl, err = rdb.Info(ctx, "replication").Result()
		}
		rdb.Close()
		if err != nil {
			return err
		}
		switch {
		case strings.Contains(repl, "role:master"):
			seenMasters++
		case strings.Contains(repl, "master_link_status:up"):
			synced++
		}
	}
	if seenMasters != masters || synced != masters*replicas {
		return fmt.Errorf("%d masters and %d replicas in sync, want %d and %d", seenMasters, synced, masters, masters*replicas)
	}
	return nil
}

// Failover kills the master that serves key's slot, as a crash would, and
// waits until one of its replicas serves the slot and every remaining
// node says the cluster is ok. It returns the killed node's address.
func (c *RedisClusterServer) Failover(ctx context.Context, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs(), MaxRetries: -1})
	defer rdb.Close()
	master, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		return "", fmt.Errorf("finding the master of %q: %w", key, err)
	}
	addr := master.Options().Addr
	i := slices.IndexFunc(c.nodes, func(n *RedisServer) bool { return n.Addr() == addr })
	if i < 0 {
		return "", fmt.Errorf("the master of %q, %s, is not a node of the cluster", key, addr)
	}
	if err := c.nodes[i].Stop(); err != nil {
		return "", err
	}
	survivor := redis.NewClient(&redis.Options{Addr: c.nodes[(i+1)%len(c.nodes)].Addr(), MaxRetries: -1})
	defer survivor.Close()
	for {
		// The slot's master as a surviving node sees it.
		slots, err := survivor.ClusterSlots(ctx).Result()
		if err == nil {
			keySlot := int(survivor.ClusterKeySlot(ctx, key).Val())
			for _, s := range slots {
				if s.Start <= keySlot && keySlot <= s.End && len(s.Nodes) > 0 && s.Nodes[0].Addr != addr {
					if c.allOK(ctx) {
						return addr, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return addr, fmt.Errorf("no replica took over from %s: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// allOK reports whether every running node says the cluster is ok.
func (c *RedisClusterServer) allOK(ctx context.Context) bool {
	for _, n := range c.nodes {
		if !n.srv.running() {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		info, err := rdb.ClusterInfo(ctx).Result()
		rdb.Close()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
	}
	return true
}

// Close stops every node and removes the directory if the package made it.
func (c *RedisClusterServer) Close() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Close())
	}
	if c.removeDir {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}
