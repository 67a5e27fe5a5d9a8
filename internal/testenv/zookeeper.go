package testenv

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ZooKeeperOptions configures StartZooKeeper. The zero value is ready to
// use.
type ZooKeeperOptions struct {
	// Dir holds the config and the data. Default: a new temporary
	// directory that Close removes.
	Dir string
	// StartTimeout bounds the start until the server serves clients.
	// Default 30s.
	StartTimeout time.Duration
}

// ZooKeeperServer is a ZooKeeper server (Debian's zookeeper package, run
// with its JRE) on a loopback port.
type ZooKeeperServer struct {
	child
	addr string
}

// zooKeeperClassPath is where Debian's zookeeper and slf4j packages put
// the server and a logger for it.
var zooKeeperClassPath = []string{"/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar"}

// StartZooKeeper starts a standalone ZooKeeper and waits until it serves
// clients.
func StartZooKeeper(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeperServer, error) {
	java, err := findBinary("java")
	if err != nil {
		return nil, fmt.Errorf("starting zookeeper: %w", err)
	}
	for _, jar := range zooKeeperClassPath {
		if _, err := os.Stat(jar); err != nil {
			return nil, fmt.Errorf("starting zookeeper: %s: %w", jar, ErrMissingBinary)
		}
	}
	dir, removeDir, err := dataDir(opts.Dir, "testenv-zookeeper-")
	if err != nil {
		return nil, fmt.Errorf("starting zookeeper: %w", err)
	}
	cfgPath := filepath.Join(dir, "zoo.cfg")
	srv, ports, err := startOnPorts(ctx, []int{0}, func(ports []int) (*server, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		cfg := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,stat,mntr,srvr\n",
			filepath.Join(dir, "data"), ports[0])
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		return &server{
			name: "zookeeper",
			bin:  java,
			args: []string{"-Xmx256m", "-cp", strings.Join(zooKeeperClassPath, ":"),
				"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath},
			dir:     dir,
			outPath: filepath.Join(dir, "zookeeper.log"),
			timeout: cmp.Or(opts.StartTimeout, 30*time.Second),
			ready:   func(ctx context.Context) error { return serving(ctx, addr) },
		}, nil
	})
	if err != nil {
		if removeDir {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("starting zookeeper: %w", err)
	}
	return &ZooKeeperServer{
		child: child{srv: srv, dir: dir, removeDir: removeDir},
		addr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
	}, nil
}

// Addr returns the client host:port.
func (z *ZooKeeperServer) Addr() string { return z.addr }

// serving asks the server for its status (srvr), which it gives only
// once it serves clients: it answers ruok earlier, and a client that
// connects then is dropped (which ClickHouse 18.16 does not survive).
func serving(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
	}
	if _, err := conn.Write([]byte("srvr")); err != nil {
		return err
	}
	answer, _ := io.ReadAll(bufio.NewReader(conn))
	if !strings.Contains(string(answer), "Mode: standalone") {
		return fmt.Errorf("srvr: %q", answer)
	}
	return nil
}
