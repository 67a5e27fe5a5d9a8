// Package e2e holds the end-to-end tests of anomalyd: they start the whole
// stack (internal/pipeline: redis-server, clickhouse-server, an in-process
// Kafka broker and the baseline, detector and publisher binaries), feed it
// generated traffic (internal/traffic, internal/replay) through the
// requests topic, and check what comes out of the scores and detections
// topics, the dead-letter topic, Redis and ClickHouse.
//
// The package has only tests; this file is its documentation. The tests
// share one stack where they do not interfere (see the shared fixture in
// main_test.go), and each checks one promise of the design:
//
//   - TestDetectionQuality: human history, baselines rebuilt, then live
//     traffic with bots of every scenario; precision and recall of the
//     published detections, per visitor.
//   - TestDetectorRestart: the detector stopped (SIGTERM) or killed
//     (SIGKILL) while events flow, then started again in its consumer
//     group: no event is lost from the Redis windows, and every score
//     record reaches the ClickHouse scores table.
//   - TestBaselineServiceDown: with the baseline service stopped, the
//     detector keeps scoring from its cached baselines and detections keep
//     being published.
//   - TestMalformedInput: garbage and an event without a required field go
//     to the dead-letter topic with a reason that names the problem, and
//     the events after them are processed.
//   - TestReplayDeterministic: two fresh stacks fed the same history and
//     traffic publish the same detections with the same scores.
//
// Run them with `go test ./e2e` (they are part of `make test`); the
// redis-server and clickhouse-server packages must be installed (`make
// deps`).
package e2e
