// Package service is what the anomalyd services (cmd/baseline, cmd/detector,
// cmd/publisher) share: flag and environment conventions, the configuration
// of their dependencies, one HTTP server for API, metrics and health, and the
// process life cycle. Every service follows the conventions below; scripts,
// docs and operators rely on them.
//
// # Flags and environment
//
// Every flag can also be set by an environment variable named ANOMALYD_ and
// the flag name in upper case with '-' as '_': -brokers is ANOMALYD_BROKERS,
// -log-level is ANOMALYD_LOG_LEVEL. The command line wins over the
// environment, the environment over the default. An empty variable counts as
// unset, so that a compose file's "ANOMALYD_X=" cannot blank a default. -h
// lists every flag with its variable. Services take no positional arguments.
// Everything is validated before the service starts, and an error names the
// flag (-brokers: "x" is not host:port) or the variable.
//
// A service registers only the groups it uses; the names are the same in all:
//
//	-brokers host:port[,...]   Kafka bootstrap brokers (KafkaConfig), with
//	                           -kafka-max-message-bytes, the brokers' limit writes fit,
//	                           -kafka-tls, -kafka-ca, -kafka-sasl, -kafka-user, -kafka-password
//	-requests-topic NAME       and -scores-topic, -detections-topic, -deadletter-topic
//	-clickhouse host:port      native protocol (ClickHouseConfig), with
//	                           -clickhouse-database, -clickhouse-user, -clickhouse-password,
//	                           -clickhouse-tls, -clickhouse-ca
//	-redis host:port[,...]     one address: a standalone server; several: Redis
//	                           Cluster seeds (redisconfig.Config, a package of its own so
//	                           that services without Redis do not link go-redis), with
//	                           -redis-user, -redis-password, -redis-tls, -redis-ca
//	-listen host:port          HTTP (HTTPConfig), with -token, -tls-cert, -tls-key,
//	                           -tls-client-ca (mutual TLS), -pprof, -stall-timeout
//	                           (when /healthz fails: Progress)
//	-baseline-url URL          the baseline service (BaselineClientConfig), with
//	                           -baseline-ca, -baseline-cert, -baseline-key
//	-max-event-ahead, -max-event-age  event-time bounds of the input (EventTimeConfig)
//	-log-level, -log-format    registered by Main in every service (LogConfig)
//
// Secrets (-token, passwords) belong in the environment: command lines are
// visible to every user of the machine.
//
// # HTTP
//
// A service serves everything on its -listen address (Server):
//
//	/healthz   200 "ok" while the process runs
//	/readyz    200 "ok" when the service's dependencies answer within
//	           ReadyTimeout, else 503 with the reason; 503 once shutdown begins
//	/metrics   Prometheus text format (NewRegistry adds Go, process and build info)
//	/...       the service's API
//
// With -token set, every path except /healthz and /readyz needs the header
// "Authorization: Bearer TOKEN", /metrics included (give Prometheus the
// token in the scrape config's authorization section); otherwise the answer
// is 401 with WWW-Authenticate: Bearer. Without a token nothing is
// authenticated and the server logs a warning when it starts.
//
// # Life cycle
//
// Main registers the flags, parses and validates them, builds the slog logger
// (to stderr) and runs the service until SIGTERM or SIGINT cancels its
// context. The service then stops reading input, flushes its outputs, commits
// its Kafka offsets, shuts its HTTP server down and returns nil. A second
// signal kills the process at once.
//
// Exit codes: 0 after a clean shutdown and for -h; 1 when the service fails;
// 2 for a bad flag, environment variable or argument.
package service
