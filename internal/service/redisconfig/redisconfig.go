// Package redisconfig is where the services that keep or read visitor
// state (the detector, anomalyctl explain) find Redis: the -redis flags and
// the client they build. It is apart from package service so that the
// services that never touch Redis (the baseline service, the publisher) do
// not link go-redis.
package redisconfig

import (
	"flag"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/service"
)

// DefaultAddr is the default of -redis.
const DefaultAddr = "127.0.0.1:6379"

// Client timeouts. They apply when a caller's context has no earlier
// deadline; go-redis's defaults are the same, but spelled out they are a
// decision rather than an accident.
const (
	DialTimeout = 5 * time.Second
	IOTimeout   = 3 * time.Second
)

// Config is one address for a standalone server, or several for the seeds
// of a Redis Cluster, and how to log in.
type Config struct {
	Addrs    []string
	User     string
	Password string
	// TLS connects over TLS, verifying the servers against CAFile if set,
	// else the system's roots; CAFile alone implies TLS.
	TLS    bool
	CAFile string
}

// RegisterFlags registers -redis, -redis-user, -redis-password,
// -redis-tls and -redis-ca.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Addrs = strings.Split(DefaultAddr, ",")
	fs.Var((*service.AddrList)(&c.Addrs), "redis", "Redis `host:port[,...]`: one address is a standalone server, several are Redis Cluster seeds")
	fs.StringVar(&c.User, "redis-user", "", "Redis ACL user; empty is the default user")
	fs.StringVar(&c.Password, "redis-password", "", "Redis password; prefer the environment variable")
	fs.BoolVar(&c.TLS, "redis-tls", false, "connect to Redis over TLS (its tls-port), verifying it against the system's roots or -redis-ca")
	fs.StringVar(&c.CAFile, "redis-ca", "", "PEM `file` of the CA certificates that may sign Redis's certificate; implies -redis-tls")
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	return service.CheckDialAddrs("redis", c.Addrs)
}

// Client builds a client for a validated config: a standalone client for
// one address, a Cluster client for several, over TLS if asked.
// ContextTimeoutEnabled is set because featurestore.NewRedisStore requires
// it: without it go-redis ignores context deadlines and a dead server
// blocks a caller for ReadTimeout. The caller closes the client.
func (c *Config) Client() (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		Addrs:                 append([]string(nil), c.Addrs...),
		Username:              c.User,
		Password:              c.Password,
		DialTimeout:           DialTimeout,
		ReadTimeout:           IOTimeout,
		WriteTimeout:          IOTimeout,
		ContextTimeoutEnabled: true,
	}
	var err error
	if opts.TLSConfig, err = service.ClientTLS(c.TLS, c.CAFile, "redis-ca"); err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(opts), nil
}
