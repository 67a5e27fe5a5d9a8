package redisconfig

import (
	"context"
	"crypto/x509"
	"flag"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"cluster seeds", []string{"-redis", "r1:6379,r2:6379"}, ""},
		{"none", []string{"-redis", ""}, "-redis: at least one host:port is required"},
		{"bad address", []string{"-redis", "r1:6379,r2"}, `-redis: "r2" is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var c Config
			c.RegisterFlags(fs)
			if err := service.ParseFlags(fs, tt.args, func(string) string { return "" }); err != nil {
				t.Fatalf("parsing %q: %v", tt.args, err)
			}
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("%q: unexpected error %v", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("%q: error %v, want one with %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestClientKind(t *testing.T) {
	tests := []struct {
		addrs   []string
		cluster bool
	}{
		{[]string{"127.0.0.1:6379"}, false},
		{[]string{"127.0.0.1:7000", "127.0.0.1:7001"}, true},
	}
	for _, tt := range tests {
		c := Config{Addrs: tt.addrs}
		rdb, err := c.Client()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		switch cl := rdb.(type) {
		case *redis.Client:
			if tt.cluster {
				t.Errorf("%q: standalone client, want Cluster", tt.addrs)
			}
			if !cl.Options().ContextTimeoutEnabled {
				t.Errorf("%q: ContextTimeoutEnabled is off", tt.addrs)
			}
		case *redis.ClusterClient:
			if !tt.cluster {
				t.Errorf("%q: Cluster client, want standalone", tt.addrs)
			}
			if !cl.Options().ContextTimeoutEnabled {
				t.Errorf("%q: ContextTimeoutEnabled is off", tt.addrs)
			}
		default:
			t.Errorf("%q: client of type %T", tt.addrs, rdb)
		}
	}
}

// TestClientServes checks the client against a real redis-server and
// that the feature store accepts it.
func TestClientServes(t *testing.T) {
	srv := testenv.Redis(t)
	c := Config{Addrs: []string{srv.Addr()}}
	rdb, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if _, err := featurestore.NewRedisStore(rdb, features.DefaultWindow(), featurestore.RedisOptions{}); err != nil {
		t.Errorf("featurestore.NewRedisStore refused the client: %v", err)
	}
}

// TestTLSAndACL connects through the services' Redis client to a
// real redis-server over TLS, as an ACL user with a password: with the
// CA, the user and the password it works; a wrong password, a client
// that does not trust the server's CA, or no TLS at all, does not.
func TestTLSAndACL(t *testing.T) {
	ca := testenv.NewCA(t, "redis CA")
	cert, key := ca.Issue(t, "redis", x509.ExtKeyUsageServerAuth)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr := l.Addr().String()
	l.Close()
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv, err := testenv.StartRedis(ctx, testenv.RedisOptions{Args: []string{
		"--tls-port", tlsPort, "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", ca.File, "--tls-auth-clients", "no",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	// The ACL user, set up over the plain port as an operator would.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "detector", "on", ">s3cret-passw0rd", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"TLS and ACL", Config{CAFile: ca.File, User: "detector", Password: "s3cret-passw0rd"}, ""},
		{"wrong password", Config{CAFile: ca.File, User: "detector", Password: "guess"}, "WRONGPASS"},
		{"no user: the default one is off", Config{CAFile: ca.File}, "NOAUTH"},
		{"CA not trusted", Config{TLS: true, User: "detector", Password: "s3cret-passw0rd"}, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Addrs = []string{tlsAddr}
			rdb, err := tt.cfg.Client()
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			err = rdb.Set(pctx, "k", "v", time.Minute).Err()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("SET: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("SET: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
