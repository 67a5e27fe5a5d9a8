package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseClusterName is the cluster of StartClickHouseCluster's
// servers, as their remote_servers name it.
const ClickHouseClusterName = "anomalyd"

// ClickHouseClusterOptions configures StartClickHouseCluster. The zero
// value is two shards of one replica each.
type ClickHouseClusterOptions struct {
	// Shards is the number of servers, a shard each. Default 2.
	Shards int
	// Dir holds ZooKeeper's and every server's directory. Default: a new
	// temporary directory that Close removes.
	Dir string
}

// ClickHouseClusterServer is ZooKeeper and clickhouse-server processes that
// form one ClickHouse cluster, ClickHouseClusterName: every server a shard
// of one replica, with the macros {shard} and {replica} that
// ReplicatedMergeTree paths use, and distributed DDL (ON CLUSTER).
type ClickHouseClusterServer struct {
	zk        *ZooKeeperServer
	servers   []*ClickHouseServer
	dir       string
	removeDir bool
}

// StartClickHouseCluster starts ZooKeeper, then the servers, and waits
// until each answers.
func StartClickHouseCluster(ctx context.Context, opts ClickHouseClusterOptions) (*ClickHouseClusterServer, error) {
	shards := max(opts.Shards, 0)
	if shards == 0 {
		shards = 2
	}
	dir, removeDir, err := dataDir(opts.Dir, "testenv-clickhouse-cluster-")
	if err != nil {
		return nil, fmt.Errorf("starting a ClickHouse cluster: %w", err)
	}
	c := &ClickHouseClusterServer{dir: dir, removeDir: removeDir}
	fail := func(err error) (*ClickHouseClusterServer, error) {
		c.Close()
		return nil, fmt.Errorf("starting a ClickHouse cluster: %w", err)
	}
	if c.zk, err = StartZooKeeper(ctx, ZooKeeperOptions{Dir: filepath.Join(dir, "zookeeper")}); err != nil {
		return fail(err)
	}
	// Every server's ports first: each names all of them in its
	// remote_servers.
	type ports struct{ tcp, http, interserver int }
	ps := make([]ports, shards)
	for i := range ps {
		for _, p := range []*int{&ps[i].tcp, &ps[i].http, &ps[i].interserver} {
			if *p, err = FreePort(); err != nil {
				return fail(err)
			}
		}
	}
	var remote strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&remote, "<shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>%d</port></replica></shard>", p.tcp)
	}
	zkHost, zkPort, _ := strings.Cut(c.zk.Addr(), ":")
	for i, p := range ps {
		extra := fmt.Sprintf(`    <interserver_http_port>%d</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <zookeeper><node><host>%s</host><port>%s</port></node><session_timeout_ms>10000</session_timeout_ms></zookeeper>
    <remote_servers><%s>%s</%s></remote_servers>
    <macros><shard>%02d</shard><replica>r%d</replica></macros>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
`, p.interserver, zkHost, zkPort, ClickHouseClusterName, remote.String(), ClickHouseClusterName, i+1, i+1)
		s, err := StartClickHouse(ctx, ClickHouseOptions{Dir: filepath.Join(dir, "shard-"+strconv.Itoa(i+1)), TCPPort: p.tcp, HTTPPort: p.http, Extra: extra})
		if err != nil {
			return fail(err)
		}
		c.servers = append(c.servers, s)
	}
	return c, nil
}

// Addrs are the servers' native protocol addresses, one a shard.
func (c *ClickHouseClusterServer) Addrs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.Addr())
	}
	return out
}

// Servers are the cluster's servers, one a shard.
func (c *ClickHouseClusterServer) Servers() []*ClickHouseServer { return c.servers }

// Open connects to every server (clickhouse-go picks one a connection,
// as a client of the cluster would).
func (c *ClickHouseClusterServer) Open() (driver.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{Addr: c.Addrs(), Protocol: clickhouse.Native, DialTimeout: time.Second})
}

// Close stops the servers, then ZooKeeper, and removes the directory if
// the package made it.
func (c *ClickHouseClusterServer) Close() error {
	var errs []error
	for _, s := range c.servers {
		errs = append(errs, s.Close())
	}
	if c.zk != nil {
		errs = append(errs, c.zk.Close())
	}
	if c.removeDir {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}
