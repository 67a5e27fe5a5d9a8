package testenv

import (
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseOptions configures StartClickHouse. The zero value is ready to
// use.
type ClickHouseOptions struct {
	// Binary is the server executable: a path, or a name looked up in
	// PATH. A binary named "clickhouse" is run as `clickhouse server`.
	// Default: clickhouse-server (also looked for in /usr/sbin, where
	// Debian installs it), else clickhouse.
	Binary string
	// Dir holds the generated config, the data and the logs. Default: a
	// new temporary directory that Close removes.
	Dir string
	// TCPPort (native protocol) and HTTPPort are the ports to listen on at
	// 127.0.0.1. Default: free ports.
	TCPPort  int
	HTTPPort int
	// StartTimeout bounds each start until the server answers a native
	// protocol ping. Default 30s.
	StartTimeout time.Duration
	// LogLevel is the server's logger level: "warning" (default),
	// "information", "debug", "trace".
	LogLevel string
	// Extra is more of the config, XML elements inside <yandex> (a
	// cluster's: see StartClickHouseCluster).
	Extra string
	// TLSCertFile and TLSKeyFile, when set, make the server also listen
	// for the native protocol over TLS (tcp_port_secure) on a free port,
	// with that certificate: SecureAddr.
	TLSCertFile, TLSKeyFile string
}

// ClickHouseServer is a clickhouse-server child process with its own config,
// ports and data directory. Data survives Stop and Start.
type ClickHouseServer struct {
	child
	addr       string
	httpAddr   string
	secureAddr string
}

// StartClickHouse writes a config for a private clickhouse-server (root
// element <yandex>, which 18.16 requires and later releases still accept),
// starts the server and waits until it answers on the native protocol.
//
// The config sets only loopback ports of its own and paths under Dir, so
// several servers can run at once on one machine.
func StartClickHouse(ctx context.Context, opts ClickHouseOptions) (*ClickHouseServer, error) {
	bin, prefix, err := clickHouseCommand(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("starting clickhouse-server: %w", err)
	}
	dir, removeDir, err := dataDir(opts.Dir, "testenv-clickhouse-")
	if err != nil {
		return nil, fmt.Errorf("starting clickhouse-server: %w", err)
	}
	logDir := filepath.Join(dir, "log")
	usersPath := filepath.Join(dir, "users.xml")
	configPath := filepath.Join(dir, "config.xml")
	errLog := filepath.Join(logDir, "clickhouse-server.err.log")
	if err := os.WriteFile(usersPath, []byte(clickHouseUsers), 0o644); err != nil {
		return nil, fmt.Errorf("starting clickhouse-server: %w", err)
	}

	want := []int{opts.TCPPort, opts.HTTPPort}
	if opts.TLSCertFile != "" {
		want = append(want, 0)
	}
	srv, ports, err := startOnPorts(ctx, want, func(ports []int) (*server, error) {
		config := clickHouseConfig(dir, usersPath, cmp.Or(opts.LogLevel, "warning"), ports[0], ports[1])
		if len(ports) > 2 {
			config = strings.Replace(config, "</yandex>", clickHouseTLS(ports[2], opts.TLSCertFile, opts.TLSKeyFile)+"</yandex>", 1)
		}
		config = strings.Replace(config, "</yandex>", opts.Extra+"</yandex>", 1)
		if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		return &server{
			name:    "clickhouse-server",
			bin:     bin,
			args:    append(slices.Clone(prefix), "--config-file="+configPath),
			dir:     dir,
			outPath: filepath.Join(dir, "stdout.log"),
			logs:    []string{errLog},
			timeout: cmp.Or(opts.StartTimeout, 30*time.Second),
			ready:   func(ctx context.Context) error { return pingClickHouse(ctx, addr) },
		}, nil
	})
	if err != nil {
		if removeDir {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("starting clickhouse-server: %w", err)
	}
	c := &ClickHouseServer{
		child:    child{srv: srv, dir: dir, removeDir: removeDir},
		addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
	}
	if len(ports) > 2 {
		c.secureAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2]))
	}
	return c, nil
}

// Open connects to the server over the native protocol, the only one
// clickhouse-go can speak to 18.16 with.
func (c *ClickHouseServer) Open() (driver.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{
		Addr:        []string{c.addr},
		Protocol:    clickhouse.Native,
		DialTimeout: time.Second,
	})
}

// Addr returns the native protocol host:port, for clickhouse-go with
// Protocol: clickhouse.Native (its HTTP mode cannot talk to 18.16).
func (c *ClickHouseServer) Addr() string { return c.addr }

// SecureAddr returns the native protocol over TLS host:port, empty unless
// the server was started with a certificate.
func (c *ClickHouseServer) SecureAddr() string { return c.secureAddr }

// HTTPAddr returns the HTTP interface host:port (for curl, /ping).
func (c *ClickHouseServer) HTTPAddr() string { return c.httpAddr }

// clickHouseCommand returns the executable and the arguments that precede
// --config-file: none for clickhouse-server, "server" for the combined
// clickhouse binary of newer packages.
func clickHouseCommand(binary string) (string, []string, error) {
	prefixFor := func(bin string) []string {
		if filepath.Base(bin) == "clickhouse" {
			return []string{"server"}
		}
		return nil
	}
	if binary != "" {
		bin, err := findBinary(binary)
		return bin, prefixFor(bin), err
	}
	// Debian installs clickhouse-server in /usr/sbin, which is not in
	// every user's PATH.
	if bin, err := findBinary("clickhouse-server", "/usr/sbin/clickhouse-server"); err == nil {
		return bin, nil, nil
	}
	if bin, err := findBinary("clickhouse"); err == nil {
		return bin, prefixFor(bin), nil
	}
	return "", nil, fmt.Errorf("clickhouse-server not found in PATH: %w", ErrMissingBinary)
}

// pingClickHouse opens a native protocol connection and pings.
func pingClickHouse(ctx context.Context, addr string) error {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Protocol:    clickhouse.Native,
		DialTimeout: time.Second,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Ping(ctx)
}

// clickHouseConfig returns a server config whose every port and path is
// private to this server. It leaves out what the packaged config has and a
// test server must not: interserver_http_port (a fixed port), query_log and
// remote_servers (background work and references to port 9000), and
// multi-gigabyte caches.
func clickHouseConfig(dir, usersPath, logLevel string, tcpPort, httpPort int) string {
	data := filepath.Join(dir, "data") + "/" // ClickHouse wants the trailing slash
	logDir := filepath.Join(dir, "log")
	return fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger>
        <level>%s</level>
        <log>%s</log>
        <errorlog>%s</errorlog>
        <size>10M</size>
        <count>1</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%d</tcp_port>
    <http_port>%d</http_port>
    <path>%s</path>
    <tmp_path>%s</tmp_path>
    <user_files_path>%s</user_files_path>
    <format_schema_path>%s</format_schema_path>
    <users_config>%s</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>
`,
		xmlText(logLevel),
		xmlText(filepath.Join(logDir, "clickhouse-server.log")),
		xmlText(filepath.Join(logDir, "clickhouse-server.err.log")),
		tcpPort, httpPort,
		xmlText(data),
		xmlText(data+"tmp/"),
		xmlText(data+"user_files/"),
		xmlText(data+"format_schemas/"),
		xmlText(usersPath),
	)
}

// clickHouseTLS is the config of the native protocol over TLS on port,
// with the server's certificate and key; clients are not asked for one.
func clickHouseTLS(port int, certFile, keyFile string) string {
	return fmt.Sprintf(`    <tcp_port_secure>%d</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>%s</certificateFile>
            <privateKeyFile>%s</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
`, port, xmlText(certFile), xmlText(keyFile))
}

// ClickHouseUser and ClickHousePassword are a second user of the test
// servers, for tests of authentication; the tests otherwise connect as
// default, without a password.
const (
	ClickHouseUser     = "anomalyd_test"
	ClickHousePassword = "test-password-0123"
)

// clickHouseUsers has the users tests connect as: default, no password,
// and ClickHouseUser with ClickHousePassword; loopback only.
const clickHouseUsers = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <` + ClickHouseUser + `>
            <password>` + ClickHousePassword + `</password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </` + ClickHouseUser + `>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`

// xmlText escapes s for use as XML character data.
func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
