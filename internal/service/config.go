package service

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Topic names one of the Kafka topics the services share.
type Topic int

// The topics, in data-flow order.
const (
	TopicRequests   Topic = iota // request events: baseline and detector read
	TopicScores                  // score records: detector writes, publisher reads
	TopicDetections              // detections for the edge: publisher writes
	TopicDeadLetter              // malformed input with the reason: every service writes
)

var topicFlags = [...]struct{ flag, def, usage string }{
	TopicRequests:   {"requests-topic", "requests", "Kafka topic of request events (JSON, key site|visitor)"},
	TopicScores:     {"scores-topic", "scores", "Kafka topic of score records"},
	TopicDetections: {"detections-topic", "detections", "Kafka topic of detections for the edge"},
	TopicDeadLetter: {"deadletter-topic", "deadletter", "Kafka topic of malformed input, each with the reason"},
}

// Flag is the name of the topic's flag, e.g. "scores-topic".
func (t Topic) Flag() string { return topicFlags[t].flag }

// DefaultBrokers is the default of -brokers.
const DefaultBrokers = "127.0.0.1:9092"

// DefaultMaxMessageBytes is Kafka's default message.max.bytes: the
// largest record batch a broker accepts in a produce request.
const DefaultMaxMessageBytes = 1048588

// minMaxMessageBytes is the smallest -kafka-max-message-bytes accepted:
// a score record or a detection must fit with room to spare.
const minMaxMessageBytes = 64 << 10

// batchOverhead is what a record batch adds to kafka-go's estimate of its
// messages' sizes: the batch header (61 bytes) and, for a batch of one
// record, the record's own framing beyond the estimate, with room to
// spare.
const batchOverhead = 512

// KafkaConfig is the Kafka brokers and the topics a service uses.
type KafkaConfig struct {
	Brokers []string
	// MaxMessageBytes is the brokers' limit on a produce request's record
	// batch (message.max.bytes, or a topic's max.message.bytes): writes
	// are split into batches that fit it.
	MaxMessageBytes int
	// TLS connects over TLS, verifying the brokers against CAFile if set,
	// else the system's roots; CAFile alone implies TLS.
	TLS    bool
	CAFile string
	// SASL is the SASL mechanism (SASLMechanisms), "" for none, with User
	// and Password.
	SASL           string
	User, Password string
	// Group is the consumer group of the service's readers, set by the
	// -group flag of RegisterGroupFlag.
	Group    string
	hasGroup bool
	// The topic fields are set only for the topics passed to RegisterFlags.
	RequestsTopic   string
	ScoresTopic     string
	DetectionsTopic string
	DeadLetterTopic string

	topics []Topic // the registered topics, for Validate
}

func (c *KafkaConfig) topic(t Topic) *string {
	switch t {
	case TopicRequests:
		return &c.RequestsTopic
	case TopicScores:
		return &c.ScoresTopic
	case TopicDetections:
		return &c.DetectionsTopic
	case TopicDeadLetter:
		return &c.DeadLetterTopic
	}
	panic(fmt.Sprintf("service: unknown topic %d", t))
}

// RegisterFlags registers -brokers and the flags of the given topics only,
// so that -h of a service lists just the topics it reads or writes.
func (c *KafkaConfig) RegisterFlags(fs *flag.FlagSet, topics ...Topic) {
	c.Brokers = strings.Split(DefaultBrokers, ",")
	fs.Var((*AddrList)(&c.Brokers), "brokers", "Kafka bootstrap brokers, `host:port[,...]`")
	fs.BoolVar(&c.TLS, "kafka-tls", false, "connect to the brokers over TLS, verifying them against the system's roots or -kafka-ca")
	fs.StringVar(&c.CAFile, "kafka-ca", "", "PEM `file` of the CA certificates that may sign the brokers' certificates; implies -kafka-tls")
	fs.StringVar(&c.SASL, "kafka-sasl", "", "SASL `mechanism` to authenticate to the brokers with: "+strings.Join(SASLMechanisms, ", ")+"; empty for none")
	fs.StringVar(&c.User, "kafka-user", "", "SASL user name, with -kafka-sasl")
	fs.StringVar(&c.Password, "kafka-password", "", "SASL password, with -kafka-sasl; prefer the environment variable")
	fs.IntVar(&c.MaxMessageBytes, "kafka-max-message-bytes", DefaultMaxMessageBytes,
		"the largest record batch the brokers accept (their message.max.bytes, or the topics' max.message.bytes if lower): writes are split into batches that fit, and a dead letter's value is cut to fit")
	c.topics = append([]Topic(nil), topics...)
	for _, t := range topics {
		f := topicFlags[t]
		fs.StringVar(c.topic(t), f.flag, f.def, f.usage)
	}
}

// Validate reports the first unusable setting.
func (c *KafkaConfig) Validate() error {
	if err := CheckDialAddrs("brokers", c.Brokers); err != nil {
		return err
	}
	switch {
	case c.SASL != "" && !slices.Contains(SASLMechanisms, c.SASL):
		return fmt.Errorf("-kafka-sasl: %q is not one of %s", c.SASL, strings.Join(SASLMechanisms, ", "))
	case c.SASL != "" && c.User == "":
		return errors.New("-kafka-sasl needs -kafka-user")
	case c.SASL == "" && (c.User != "" || c.Password != ""):
		return errors.New("-kafka-user and -kafka-password need -kafka-sasl")
	}
	if c.MaxMessageBytes < minMaxMessageBytes {
		return fmt.Errorf("-kafka-max-message-bytes: %d is below the %d bytes a record may need", c.MaxMessageBytes, minMaxMessageBytes)
	}
	if c.hasGroup && c.Group == "" {
		return errors.New("-group: a consumer group name is required")
	}
	seen := make(map[string]Topic)
	for _, t := range c.topics {
		name := *c.topic(t)
		if err := checkTopicName(name); err != nil {
			return fmt.Errorf("-%s: %w", t.Flag(), err)
		}
		// One topic in two roles would make a service read its own output.
		if other, ok := seen[name]; ok {
			return fmt.Errorf("-%s and -%s are both %q", other.Flag(), t.Flag(), name)
		}
		seen[name] = t
	}
	return nil
}

// SASLMechanisms are the values of -kafka-sasl.
var SASLMechanisms = []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"}

// Clients returns the dialer of the service's readers
// (kafka.ReaderConfig.Dialer) and the transport of its writers, with TLS
// and SASL as configured. The caller closes the transport's idle
// connections when done.
func (c *KafkaConfig) Clients() (*kafka.Dialer, *kafka.Transport, error) {
	tc, err := ClientTLS(c.TLS, c.CAFile, "kafka-ca")
	if err != nil {
		return nil, nil, err
	}
	var mech sasl.Mechanism
	switch c.SASL {
	case "SCRAM-SHA-512":
		mech, err = scram.Mechanism(scram.SHA512, c.User, c.Password)
	case "SCRAM-SHA-256":
		mech, err = scram.Mechanism(scram.SHA256, c.User, c.Password)
	case "PLAIN":
		mech = plain.Mechanism{Username: c.User, Password: c.Password}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("-kafka-sasl %s: %w", c.SASL, err)
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tc, SASLMechanism: mech}
	return dialer, &kafka.Transport{TLS: tc, SASL: mech}, nil
}

// BatchBytes is the most that a writer may put in one produce request, by
// kafka-go's estimate of its messages' sizes (kafka.Writer.BatchBytes), so
// that every request fits MaxMessageBytes.
func (c *KafkaConfig) BatchBytes() int64 { return int64(c.MaxMessageBytes - batchOverhead) }

// Writer returns a synchronous writer to topic, with the settings every
// service needs where kafka-go's defaults are traps: every in-sync replica
// acknowledges (the default waits for none, and offsets are committed on
// the strength of a write), a produce request waits 10 ms to fill, not
// 1 s, requests are split to fit MaxMessageBytes (a larger one is refused
// by the broker however often it is retried), and keys are placed as the
// Java client places them (Murmur2), so that a visitor's records stay in
// order on one partition. Callers may tune BatchSize and BatchTimeout.
// The caller owns transport and closes its idle connections after closing
// the writer.
func (c *KafkaConfig) Writer(topic string, transport *kafka.Transport) *kafka.Writer {
	return &kafka.Writer{
		Addr: kafka.TCP(c.Brokers...), Topic: topic, Transport: transport,
		Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond, BatchBytes: c.BatchBytes(),
	}
}

// checkTopicName applies Kafka's rules for topic names.
func checkTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("a topic name is required")
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid topic name", name)
	case len(name) > 249:
		return fmt.Errorf("topic name %.20q... is longer than 249 characters", name)
	case strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "":
		return fmt.Errorf("topic name %q has characters other than ASCII letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

// DefaultListen is the -listen address when a service gives none. Loopback,
// so that nothing is exposed until an operator decides to.
const DefaultListen = "127.0.0.1:8080"

// MinTokenLen is the shortest bearer token accepted, to refuse guessable ones.
const MinTokenLen = 16

// HTTPConfig is the service's HTTP listener and its authentication.
type HTTPConfig struct {
	Listen string
	// Token, if set, is the bearer token every request needs except
	// /healthz and /readyz.
	Token string
	// AdminToken, if set, is the only token the API's admin operations
	// accept (RequireAdmin: the baseline service's rebuild); without it,
	// Token serves them too. It needs Token.
	AdminToken string
	// TLSCert and TLSKey are PEM files; both or neither.
	TLSCert, TLSKey string
	// TLSClientCA, if set, is the PEM file of the CAs whose client
	// certificates the API and /metrics require (mutual TLS); the health
	// checks stay open to probes without one.
	TLSClientCA string
	// Pprof serves net/http/pprof's profiles at /debug/pprof/, behind
	// Token like the API.
	Pprof bool
	// StallTimeout is how long the service's consumer may hold messages
	// without committing before /healthz fails (Progress); 0 never.
	StallTimeout time.Duration
}

// RegisterFlags registers -listen (default defaultListen, or DefaultListen
// when that is empty), -token, -tls-cert, -tls-key, -tls-client-ca,
// -stall-timeout and -pprof.
func (c *HTTPConfig) RegisterFlags(fs *flag.FlagSet, defaultListen string) {
	if defaultListen == "" {
		defaultListen = DefaultListen
	}
	fs.StringVar(&c.Listen, "listen", defaultListen, "`host:port` of the HTTP server: API, /metrics, /healthz, /readyz (an empty host is every interface)")
	fs.StringVar(&c.Token, "token", "", fmt.Sprintf("bearer token required on every HTTP request except /healthz and /readyz, at least %d characters; empty disables authentication. Prefer the environment variable: command lines are visible to all users", MinTokenLen))
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate `file` (chain) for HTTPS; needs -tls-key")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key `file` for HTTPS; needs -tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM `file` of the CAs whose client certificates every request but /healthz and /readyz must present (mutual TLS); needs -tls-cert")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", DefaultStallTimeout, "/healthz fails once the service has held messages read from Kafka this long without committing them, so that Kubernetes restarts a consumer that is connected but stuck; a consumer with nothing to read stays healthy; 0 disables")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's runtime profiles (heap, CPU, goroutines) at /debug/pprof/, behind -token like the API, for `go tool pprof`")
}

// RegisterAdminFlag registers -admin-token, for a service whose API has
// admin operations.
func (c *HTTPConfig) RegisterAdminFlag(fs *flag.FlagSet, operations string) {
	fs.StringVar(&c.AdminToken, "admin-token", "", fmt.Sprintf("bearer token that alone may %s, at least %d characters, unlike -token, which then only reads; empty: -token may. Prefer the environment variable", operations, MinTokenLen))
}

// Validate reports the first unusable setting.
func (c *HTTPConfig) Validate() error {
	if err := checkListenAddr("listen", c.Listen); err != nil {
		return err
	}
	for _, t := range []struct{ flag, token string }{{"token", c.Token}, {"admin-token", c.AdminToken}} {
		if err := checkToken(t.flag, t.token); err != nil {
			return err
		}
	}
	switch {
	case c.AdminToken != "" && c.Token == "":
		return errors.New("-admin-token needs -token: without it every operation is open")
	case c.AdminToken != "" && c.AdminToken == c.Token:
		return errors.New("-admin-token and -token are the same: the admin operations would be open to every reader")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together: set both or neither")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("-tls-client-ca needs -tls-cert: client certificates come over TLS")
	}
	if c.StallTimeout < 0 {
		return fmt.Errorf("-stall-timeout must not be negative, got %v", c.StallTimeout)
	}
	return nil
}

// checkToken checks a bearer token flag's value; empty is allowed.
func checkToken(flag, token string) error {
	if token == "" {
		return nil
	}
	if len(token) < MinTokenLen {
		return fmt.Errorf("-%s: %d characters, want at least %d", flag, len(token), MinTokenLen)
	}
	// It travels in a header: no spaces, no control characters.
	for _, b := range []byte(token) {
		if b <= ' ' || b >= 0x7f {
			return fmt.Errorf("-%s: only printable ASCII characters without spaces are allowed", flag)
		}
	}
	return nil
}

// ClickHouse defaults.
const (
	DefaultClickHouseAddr = "127.0.0.1:9000"
	DefaultClickHouseDB   = "default"
	DefaultClickHouseUser = "default"
)

// ClickHouseConfig is where a service finds ClickHouse (native protocol).
type ClickHouseConfig struct {
	// Addr is a server's native-protocol host:port, or several, comma
	// separated: servers of one cluster, tried in turn.
	Addr string
	// Cluster names the ClickHouse cluster (the servers' remote_servers)
	// whose shards hold the tables: replicated tables on every server
	// under Distributed tables of the tables' names. "" for one server.
	Cluster  string
	Database string
	User     string
	Password string
	// TLS connects over TLS (ClickHouse's tcp_port_secure), verifying the
	// server against CAFile if set, else the system's roots; CAFile alone
	// implies TLS.
	TLS    bool
	CAFile string
}

// RegisterFlags registers -clickhouse, -clickhouse-cluster,
// -clickhouse-database, -clickhouse-user, -clickhouse-password,
// -clickhouse-tls and -clickhouse-ca.
func (c *ClickHouseConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "clickhouse", DefaultClickHouseAddr, "ClickHouse native-protocol `host:port[,...]` (its tcp_port, or tcp_port_secure with -clickhouse-tls); several: servers of one cluster, tried in turn")
	fs.StringVar(&c.Cluster, "clickhouse-cluster", "", "ClickHouse cluster (a name of the servers' remote_servers) whose shards hold the tables: each a replicated table on every server (ZooKeeper, and the {shard} and {replica} macros) under a Distributed table of its name, created ON CLUSTER; empty: one server")
	fs.StringVar(&c.Database, "clickhouse-database", DefaultClickHouseDB, "ClickHouse database of anomalyd's tables")
	fs.StringVar(&c.User, "clickhouse-user", DefaultClickHouseUser, "ClickHouse user")
	fs.StringVar(&c.Password, "clickhouse-password", "", "ClickHouse password; prefer the environment variable")
	fs.BoolVar(&c.TLS, "clickhouse-tls", false, "connect to ClickHouse over TLS, verifying it against the system's roots or -clickhouse-ca")
	fs.StringVar(&c.CAFile, "clickhouse-ca", "", "PEM `file` of the CA certificates that may sign ClickHouse's certificate; implies -clickhouse-tls")
}

// identifier is a ClickHouse name that needs no quoting.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects to ClickHouse as configured, over the native protocol (the
// HTTP one cannot talk to 18.16). The connection is lazy: Ping checks it.
// The caller closes it.
func (c *ClickHouseConfig) Open() (driver.Conn, error) {
	opts := &clickhouse.Options{
		Addr:        strings.Split(c.Addr, ","),
		Auth:        clickhouse.Auth{Database: c.Database, Username: c.User, Password: c.Password},
		Protocol:    clickhouse.Native,
		DialTimeout: 5 * time.Second,
	}
	var err error
	if opts.TLS, err = ClientTLS(c.TLS, c.CAFile, "clickhouse-ca"); err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return conn, nil
}

// Validate reports the first unusable setting.
func (c *ClickHouseConfig) Validate() error {
	if err := CheckDialAddrs("clickhouse", strings.Split(c.Addr, ",")); err != nil {
		return err
	}
	if c.Cluster != "" && !identifier.MatchString(c.Cluster) {
		return fmt.Errorf("-clickhouse-cluster: %q is not a cluster name (letters, digits and '_')", c.Cluster)
	}
	if c.Database == "" {
		return errors.New("-clickhouse-database: a database name is required")
	}
	if c.User == "" {
		return errors.New("-clickhouse-user: a user name is required")
	}
	return nil
}

// DefaultBaselineURL is the default of -baseline-url: the baseline service
// on DefaultListen.
const DefaultBaselineURL = "http://127.0.0.1:8080"

// BaselineClientConfig is where a service finds the baseline service and
// how it trusts it. The bearer token is the client's own -token
// (HTTPConfig): the services of one deployment share it.
type BaselineClientConfig struct {
	URL string
	// CAFile, if set, is the PEM file of the certificates that may sign
	// the baseline service's (else the system's roots).
	CAFile string
	// CertFile and KeyFile are the client's certificate and key (PEM),
	// presented for mutual TLS; both or neither.
	CertFile, KeyFile string
}

// RegisterFlags registers -baseline-url, -baseline-ca, -baseline-cert and
// -baseline-key.
func (c *BaselineClientConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "baseline-url", DefaultBaselineURL, "base `URL` of the baseline service (http or https)")
	fs.StringVar(&c.CAFile, "baseline-ca", "", "PEM `file` of the CA certificates that may sign the baseline service's certificate; empty: the system's roots")
	fs.StringVar(&c.CertFile, "baseline-cert", "", "PEM certificate `file` presented to the baseline service (mutual TLS, its -tls-client-ca); needs -baseline-key")
	fs.StringVar(&c.KeyFile, "baseline-key", "", "PEM private key `file` of -baseline-cert")
}

// Validate reports the first unusable setting.
func (c *BaselineClientConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-baseline-url: %q is not an http or https URL with a host", c.URL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		// Credentials go in -token; a query or fragment would be lost when
		// the client joins paths onto the base.
		return fmt.Errorf("-baseline-url: %q must have no user info, query or fragment", c.URL)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("-baseline-cert and -baseline-key go together: set both or neither")
	}
	if u.Scheme != "https" && (c.CAFile != "" || c.CertFile != "") {
		return fmt.Errorf("-baseline-ca and -baseline-cert need an https -baseline-url, got %q", c.URL)
	}
	return nil
}

// Client returns the HTTP client of the baseline service: TLS 1.2 or
// later, verifying its certificate against CAFile if set, and presenting
// the client certificate if set.
func (c *BaselineClientConfig) Client() (*http.Client, error) {
	tc, err := ClientTLS(true, c.CAFile, "baseline-ca")
	if err != nil {
		return nil, err
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("-baseline-cert and -baseline-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr}, nil
}

// ClientTLS is the TLS config of a client that verifies its server
// against the CAs of caFile (its flag named in errors), else the system's
// roots; nil when neither on nor caFile asks for TLS.
func ClientTLS(on bool, caFile, caFlag string) (*tls.Config, error) {
	if !on && caFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := certPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("-%s: %w", caFlag, err)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// certPool reads a PEM file of CA certificates.
func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}

// LogConfig is the format and level of the service's log.
type LogConfig struct {
	Level  slog.Level
	Format string
}

// RegisterFlags registers -log-level and -log-format.
func (c *LogConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.TextVar(&c.Level, "log-level", slog.LevelInfo, "least severe `level` logged: debug, info, warn or error")
	fs.StringVar(&c.Format, "log-format", "text", "log format: text (logfmt) or json")
}

// Validate reports the first unusable setting.
func (c *LogConfig) Validate() error {
	if c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("-log-format: %q is neither text nor json", c.Format)
	}
	return nil
}

// Logger builds a logger for a validated config that writes to w.
func (c *LogConfig) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
