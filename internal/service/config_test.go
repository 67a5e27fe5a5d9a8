package service

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

// validator is what every config group implements.
type validator interface{ Validate() error }

// checkValidate parses args into a fresh config and checks Validate's
// result: wantErr "" means valid, otherwise a substring of the error.
func checkValidate(t *testing.T, register func(*flag.FlagSet) validator, args []string, wantErr string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := register(fs)
	if err := ParseFlags(fs, args, env(nil)); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	err := c.Validate()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("%q: unexpected error %v", args, err)
	case wantErr != "" && err == nil:
		t.Errorf("%q: valid, want an error with %q", args, wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("%q: error %q, want one with %q", args, err, wantErr)
	}
}

type validateCase struct {
	name    string
	args    []string
	wantErr string
}

func TestKafkaConfig(t *testing.T) {
	detector := func(fs *flag.FlagSet) validator {
		c := new(KafkaConfig)
		c.RegisterFlags(fs, TopicRequests, TopicScores, TopicDeadLetter)
		c.RegisterGroupFlag(fs, "detector")
		return c
	}
	tests := []validateCase{
		{"defaults", nil, ""},
		{"no group", []string{"-group", ""}, "-group: a consumer group name is required"},
		{"several brokers", []string{"-brokers", "k1:9092,k2:9092,[::1]:9092"}, ""},
		{"no brokers", []string{"-brokers", ""}, "-brokers: at least one host:port is required"},
		{"no port", []string{"-brokers", "x"}, `-brokers: "x" is not host:port`},
		{"no host", []string{"-brokers", ":9092"}, `-brokers: ":9092" is not host:port`},
		{"port 0", []string{"-brokers", "k:0"}, `"k:0" is not host:port`},
		{"port too big", []string{"-brokers", "k:65536"}, `"k:65536" is not host:port`},
		{"named port", []string{"-brokers", "k:kafka"}, `"k:kafka" is not host:port`},
		{"signed port", []string{"-brokers", "k:+80"}, `"k:+80" is not host:port`},
		{"empty element", []string{"-brokers", "k:1,,k:2"}, `"" is not host:port`},
		{"empty topic", []string{"-scores-topic", ""}, "-scores-topic: a topic name is required"},
		{"bad topic characters", []string{"-requests-topic", "re quests"}, "-requests-topic: topic name"},
		{"dot topic", []string{"-deadletter-topic", ".."}, "-deadletter-topic:"},
		{"long topic", []string{"-scores-topic", strings.Repeat("s", 250)}, "longer than 249"},
		{"same topic twice", []string{"-scores-topic", "requests"}, `-requests-topic and -scores-topic are both "requests"`},
		{"larger broker limit", []string{"-kafka-max-message-bytes", "10485760"}, ""},
		{"tiny broker limit", []string{"-kafka-max-message-bytes", "1000"}, "-kafka-max-message-bytes: 1000 is below"},
		{"TLS and SCRAM", []string{"-kafka-ca", "ca.pem", "-kafka-sasl", "SCRAM-SHA-256", "-kafka-user", "u", "-kafka-password", "p"}, ""},
		{"unknown SASL", []string{"-kafka-sasl", "GSSAPI", "-kafka-user", "u"}, `-kafka-sasl: "GSSAPI" is not one of`},
		{"SASL without user", []string{"-kafka-sasl", "PLAIN"}, "-kafka-sasl needs -kafka-user"},
		{"user without SASL", []string{"-kafka-user", "u"}, "need -kafka-sasl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, detector, tt.args, tt.wantErr) })
	}
}

func TestKafkaConfigRegistersOnlyGivenTopics(t *testing.T) {
	fs := flag.NewFlagSet("publisher", flag.ContinueOnError)
	var c KafkaConfig
	c.RegisterFlags(fs, TopicScores, TopicDetections)
	for _, tt := range []struct {
		flag string
		want bool
	}{{"scores-topic", true}, {"detections-topic", true}, {"requests-topic", false}, {"deadletter-topic", false}} {
		if got := fs.Lookup(tt.flag) != nil; got != tt.want {
			t.Errorf("-%s registered = %v, want %v", tt.flag, got, tt.want)
		}
	}
	if c.ScoresTopic != "scores" || c.DetectionsTopic != "detections" || c.RequestsTopic != "" {
		t.Errorf("topics = %+v, want defaults for the registered ones only", c)
	}
	// An unregistered topic is empty, and that is not an error.
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestHTTPConfig(t *testing.T) {
	register := func(fs *flag.FlagSet) validator {
		c := new(HTTPConfig)
		c.RegisterFlags(fs, "127.0.0.1:8081")
		c.RegisterAdminFlag(fs, "rebuild baselines")
		return c
	}
	token := strings.Repeat("t", MinTokenLen)
	tests := []validateCase{
		{"defaults", nil, ""},
		{"every interface", []string{"-listen", ":8080"}, ""},
		{"any port", []string{"-listen", "127.0.0.1:0"}, ""},
		{"no port", []string{"-listen", "localhost"}, `-listen: "localhost" is not host:port`},
		{"bad port", []string{"-listen", ":http"}, `-listen: ":http" is not host:port`},
		{"token", []string{"-token", token}, ""},
		{"short token", []string{"-token", token[1:]}, "-token: 15 characters, want at least 16"},
		{"token with space", []string{"-token", token + " x"}, "-token: only printable ASCII"},
		{"token with non-ASCII", []string{"-token", token + "é"}, "-token: only printable ASCII"},
		{"admin token", []string{"-token", token, "-admin-token", token + "-admin"}, ""},
		{"short admin token", []string{"-token", token, "-admin-token", "short"}, "-admin-token: 5 characters"},
		{"admin token without token", []string{"-admin-token", token}, "-admin-token needs -token"},
		{"admin token same as token", []string{"-token", token, "-admin-token", token}, "-admin-token and -token are the same"},
		{"TLS pair", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}, ""},
		{"cert alone", []string{"-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together"},
		{"key alone", []string{"-tls-key", "k.pem"}, "-tls-cert and -tls-key go together"},
		{"client CA", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-tls-client-ca", "ca.pem"}, ""},
		{"client CA without TLS", []string{"-tls-client-ca", "ca.pem"}, "-tls-client-ca needs -tls-cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, register, tt.args, tt.wantErr) })
	}
}

func TestHTTPConfigListenDefault(t *testing.T) {
	for given, want := range map[string]string{"": DefaultListen, "127.0.0.1:8082": "127.0.0.1:8082"} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		var c HTTPConfig
		c.RegisterFlags(fs, given)
		if c.Listen != want || fs.Lookup("listen").DefValue != want {
			t.Errorf("RegisterFlags(%q): listen %q, default %q, want %q", given, c.Listen, fs.Lookup("listen").DefValue, want)
		}
	}
}

func TestClickHouseConfig(t *testing.T) {
	register := func(fs *flag.FlagSet) validator {
		c := new(ClickHouseConfig)
		c.RegisterFlags(fs)
		return c
	}
	tests := []validateCase{
		{"defaults", nil, ""},
		{"all set", []string{"-clickhouse", "ch:9440", "-clickhouse-database", "anomalyd", "-clickhouse-user", "u", "-clickhouse-password", "p"}, ""},
		{"bad address", []string{"-clickhouse", "ch"}, `-clickhouse: "ch" is not host:port`},
		{"no database", []string{"-clickhouse-database", ""}, "-clickhouse-database:"},
		{"no user", []string{"-clickhouse-user", ""}, "-clickhouse-user:"},
		{"a cluster", []string{"-clickhouse", "ch1:9000,ch2:9000", "-clickhouse-cluster", "anomalyd_2"}, ""},
		{"a bad server of a cluster", []string{"-clickhouse", "ch1:9000,ch2"}, `-clickhouse: "ch2" is not host:port`},
		{"a bad cluster name", []string{"-clickhouse-cluster", "my cluster"}, `-clickhouse-cluster: "my cluster" is not a cluster name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, register, tt.args, tt.wantErr) })
	}
}

func TestBaselineClientConfig(t *testing.T) {
	register := func(fs *flag.FlagSet) validator {
		c := new(BaselineClientConfig)
		c.RegisterFlags(fs)
		return c
	}
	tests := []validateCase{
		{"defaults", nil, ""},
		{"https with path", []string{"-baseline-url", "https://baseline.internal:8443/anomalyd"}, ""},
		{"no scheme", []string{"-baseline-url", "baseline:8080"}, "-baseline-url:"},
		{"other scheme", []string{"-baseline-url", "ftp://baseline"}, "-baseline-url:"},
		{"no host", []string{"-baseline-url", "http:///x"}, "-baseline-url:"},
		{"user info", []string{"-baseline-url", "http://u:p@baseline"}, "no user info"},
		{"query", []string{"-baseline-url", "http://baseline/?a=b"}, "no user info, query or fragment"},
		{"empty", []string{"-baseline-url", ""}, "-baseline-url:"},
		{"mutual TLS", []string{"-baseline-url", "https://b:8443", "-baseline-ca", "ca.pem", "-baseline-cert", "c.pem", "-baseline-key", "k.pem"}, ""},
		{"cert without key", []string{"-baseline-url", "https://b:8443", "-baseline-cert", "c.pem"}, "-baseline-cert and -baseline-key go together"},
		{"CA over http", []string{"-baseline-url", "http://b:8080", "-baseline-ca", "ca.pem"}, "need an https -baseline-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, register, tt.args, tt.wantErr) })
	}
}

func TestLogConfig(t *testing.T) {
	register := func(fs *flag.FlagSet) validator {
		c := new(LogConfig)
		c.RegisterFlags(fs)
		return c
	}
	tests := []validateCase{
		{"defaults", nil, ""},
		{"json debug", []string{"-log-format", "json", "-log-level", "debug"}, ""},
		{"bad format", []string{"-log-format", "xml"}, `-log-format: "xml" is neither text nor json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, register, tt.args, tt.wantErr) })
	}
}

func TestLogConfigLogger(t *testing.T) {
	var buf bytes.Buffer
	c := LogConfig{Level: slog.LevelWarn, Format: "json"}
	l := c.Logger(&buf)
	l.Info("dropped")
	l.Warn("kept", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec["msg"] != "kept" || rec["level"] != "WARN" {
		t.Errorf("record = %v", rec)
	}

	buf.Reset()
	c = LogConfig{Level: slog.LevelDebug, Format: "text"}
	c.Logger(&buf).Debug("hello")
	if !strings.Contains(buf.String(), "level=DEBUG msg=hello") {
		t.Errorf("text record = %q", buf.String())
	}
}

// TestClickHouseAuth connects through the services' ClickHouse config to a
// real server as a user with a password: the right one works, a wrong one
// is refused.
func TestClickHouseAuth(t *testing.T) {
	srv := testenv.ClickHouse(t)
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"right password", testenv.ClickHousePassword, true},
		{"wrong password", "guess-guess-guess", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ClickHouseConfig{Addr: srv.Addr(), Database: "default", User: testenv.ClickHouseUser, Password: tt.password}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			conn, err := cfg.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var one uint8
			err = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
			if tt.ok && (err != nil || one != 1) {
				t.Errorf("SELECT 1 as %s: %v", testenv.ClickHouseUser, err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "password")) {
				t.Errorf("SELECT 1 with a wrong password: %v, want the server to refuse the password", err)
			}
		})
	}
}

// TestClickHouseTLS connects through the services' ClickHouse config to a
// real server's native protocol over TLS, as a user with a password: with
// the CA that signed the server's certificate it works, without it the
// certificate is refused, and a plain connection to the TLS port fails.
func TestClickHouseTLS(t *testing.T) {
	ca := testenv.NewCA(t, "clickhouse CA")
	cert, key := ca.Issue(t, "clickhouse", x509.ExtKeyUsageServerAuth)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv, err := testenv.StartClickHouse(ctx, testenv.ClickHouseOptions{TLSCertFile: cert, TLSKeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tests := []struct {
		name    string
		cfg     ClickHouseConfig
		wantErr string // "" for success, "*" for any error
	}{
		{"TLS and password", ClickHouseConfig{CAFile: ca.File, Password: testenv.ClickHousePassword}, ""},
		{"wrong password", ClickHouseConfig{CAFile: ca.File, Password: "guess-guess-guess"}, "password"},
		{"CA not trusted", ClickHouseConfig{TLS: true, Password: testenv.ClickHousePassword}, "certificate"},
		{"plain to the TLS port", ClickHouseConfig{Password: testenv.ClickHousePassword}, "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Addr, tt.cfg.Database, tt.cfg.User = srv.SecureAddr(), "default", testenv.ClickHouseUser
			if err := tt.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			conn, err := tt.cfg.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
			defer qcancel()
			var one uint8
			err = conn.QueryRow(qctx, "SELECT 1").Scan(&one)
			switch {
			case tt.wantErr == "" && (err != nil || one != 1):
				t.Errorf("SELECT 1: %v", err)
			case tt.wantErr == "*" && err == nil:
				t.Error("SELECT 1 worked, want an error")
			case tt.wantErr != "" && tt.wantErr != "*" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("SELECT 1: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
