// Package testenv starts the real servers that anomalyd talks to, so that
// tests and `make demo` exercise real protocols instead of mocks: a
// redis-server and a clickhouse-server (18.16, the Debian package) run as
// child processes on free loopback ports with temporary data directories,
// and Kafka is an in-process Kafka-protocol broker (kfake).
//
// The core functions (StartRedis, StartClickHouse, StartKafka) take a
// context and options and return a handle with Close, usable outside tests.
// Redis and ClickHouse handles can also Stop and Start again on the same
// port and data directory, to simulate a dependency going away and coming
// back. The thin helpers Redis, ClickHouse and Kafka wrap them for tests:
// they fail the test when a server cannot start (a missing binary is a
// failure that names `make deps`, never a skip) and register Close with
// t.Cleanup.
//
// The package keeps no global state, so parallel tests and concurrently
// running test binaries each get their own servers.
package testenv
