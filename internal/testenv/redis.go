package testenv

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures StartRedis. The zero value is ready to use.
type RedisOptions struct {
	// Binary is the redis-server executable: a path, or a name looked up
	// in PATH. Default "redis-server".
	Binary string
	// Dir is the server's working directory. Default: a new temporary
	// directory that Close removes.
	Dir string
	// Port is the port to listen on at 127.0.0.1. Default: a free port.
	Port int
	// StartTimeout bounds each start until the server answers PING.
	// Default 10s.
	StartTimeout time.Duration
	// Args are extra redis-server arguments, appended to the defaults
	// (for example "--maxmemory", "64mb").
	Args []string
}

// RedisServer is a redis-server child process. It keeps nothing on disk, so its
// data does not survive Stop.
type RedisServer struct {
	child
	addr string
}

// StartRedis starts redis-server on a loopback port and waits until it
// answers PING.
func StartRedis(ctx context.Context, opts RedisOptions) (*RedisServer, error) {
	bin, err := findBinary(cmp.Or(opts.Binary, "redis-server"))
	if err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	dir, removeDir, err := dataDir(opts.Dir, "testenv-redis-")
	if err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	srv, ports, err := startOnPorts(ctx, []int{opts.Port}, func(ports []int) (*server, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		args := []string{
			"--port", strconv.Itoa(ports[0]),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--daemonize", "no",
			"--logfile", "", // stdout, which server.start sends to a file
			"--save", "", // no RDB snapshots and no AOF: tests want speed, not durability
			"--appendonly", "no",
		}
		return &server{
			name:    "redis-server",
			bin:     bin,
			args:    append(args, opts.Args...),
			dir:     dir,
			outPath: filepath.Join(dir, "redis-server.log"),
			timeout: cmp.Or(opts.StartTimeout, 10*time.Second),
			ready:   func(ctx context.Context) error { return pingRedis(ctx, addr) },
		}, nil
	})
	if err != nil {
		if removeDir {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	return &RedisServer{
		child: child{srv: srv, dir: dir, removeDir: removeDir},
		addr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
	}, nil
}

// Addr returns the server's host:port.
func (r *RedisServer) Addr() string { return r.addr }

// pingRedis sends one PING with a short-lived go-redis client once the port
// accepts connections; checking the port first keeps go-redis from logging
// every refused dial while the server starts.
func pingRedis(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	return c.Ping(ctx).Err()
}
