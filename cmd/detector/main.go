// Command detector is the anomalyd service that scores visitors: it reads
// request events from Kafka, keeps each visitor's window features in Redis,
// scores the window against its site's HBOS baseline (fetched from the
// baseline service and cached) and writes a score record for every scoring
// to the scores topic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anomalyd/anomalyd/internal/detector"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/service/redisconfig"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

const description = `detector reads request events from Kafka, updates each visitor's sliding
window features in Redis, scores the visitor against its site's HBOS
baseline (from the baseline service, cached and revalidated by ETag) at most
once per -rescore-interval, and writes a score record for every scoring to
the scores topic; malformed events go to the dead-letter topic. The window,
identity, secret and field-map flags must match the baseline service's.`

func main() {
	var a app
	os.Exit(serviceMain(context.Background(), &a, os.Args[1:], os.Stderr))
}

// serviceMain runs the service with args and returns its exit code; tests
// call it with their own context and output.
func serviceMain(ctx context.Context, a *app, args []string, stderr io.Writer) int {
	return service.Main(ctx, a.service(), args, os.Getenv, stderr)
}

// setMemoryLimit sets the runtime's soft memory limit from -memory-limit,
// else GOMEMLIMIT, else -max-visitors, and returns the limit before.
func (a *app) setMemoryLimit(logger *slog.Logger) int64 {
	limit, from := a.detector.MemoryLimit, "-memory-limit"
	switch {
	case limit > 0:
	case os.Getenv("GOMEMLIMIT") != "":
		limit, from = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	default:
		limit, from = a.detector.MemoryBudget(), "-max-visitors"
	}
	logger.Info("memory limit", "bytes", limit, "from", from, "max_visitors", a.detector.MaxVisitors)
	return debug.SetMemoryLimit(limit)
}

// app is the detector's configuration and wiring.
type app struct {
	kafka      service.KafkaConfig
	redis      redisconfig.Config
	http       service.HTTPConfig
	baseline   service.BaselineClientConfig
	features   features.Config
	detector   detector.Config
	revalidate time.Duration
	policyFile string
}

func (a *app) service() service.Service {
	return service.Service{Name: "detector", Description: description, RegisterFlags: a.registerFlags, Validate: a.validate, Run: a.run}
}

func (a *app) registerFlags(fs *flag.FlagSet) {
	a.kafka.RegisterFlags(fs, service.TopicRequests, service.TopicScores, service.TopicDeadLetter)
	a.redis.RegisterFlags(fs)
	a.http.RegisterFlags(fs, "127.0.0.1:8081")
	a.baseline.RegisterFlags(fs)
	a.features.RegisterFlags(fs)
	a.detector = detector.DefaultConfig()
	a.detector.RegisterFlags(fs)
	fs.DurationVar(&a.revalidate, "baseline-revalidate", detector.DefaultRevalidate, "how long a fetched baseline is used before it is revalidated (by ETag); the last good one is kept while the baseline service is down")
	a.kafka.RegisterGroupFlag(fs, "detector")
	policy.RegisterFlags(fs, &a.policyFile)
}

func (a *app) validate() error {
	for _, v := range []interface{ Validate() error }{&a.kafka, &a.redis, &a.http, &a.baseline, &a.features, &a.detector} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	switch {
	case a.revalidate <= 0:
		return fmt.Errorf("-baseline-revalidate must be positive, got %v", a.revalidate)
	}
	if a.policyFile != "" {
		if _, err := policy.Load(a.policyFile); err != nil {
			return fmt.Errorf("-policy: %w", err)
		}
	}
	return nil
}

func (a *app) run(ctx context.Context, logger *slog.Logger) error {
	defer debug.SetMemoryLimit(a.setMemoryLimit(logger))
	rdb, err := a.redis.Client()
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := service.NewRegistry()
	metrics := detector.NewMetrics(reg)

	names := a.features.Set().Names()
	client, err := a.baseline.Client()
	if err != nil {
		return err
	}
	baselines := detector.NewBaselines(a.baseline.URL, a.http.Token, client, a.revalidate, names, logger)
	defer baselines.Close()
	registerBaselineStats(reg, baselines)

	var stores []*featurestore.RedisStore
	proc, err := detector.NewProcessor(a.detector, a.features, func() (detector.Store, error) {
		s, err := featurestore.NewRedisStore(rdb, a.features.Window, a.detector.StoreOptions())
		if err == nil {
			stores = append(stores, s)
		}
		return s, err
	}, baselines, metrics)
	if err != nil {
		return err
	}
	pw, err := policy.Watch(ctx, a.policyFile, reg, logger)
	if err != nil {
		return fmt.Errorf("-policy: %w", err)
	}
	proc.SetPolicy(pw.Policy)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "anomalyd", Subsystem: "detector", Name: "late_events_total",
		Help: "Events older than the window of the newest event seen, dropped by the feature stores.",
	}, func() float64 {
		var n uint64
		for _, s := range stores {
			n += s.Late()
		}
		return float64(n)
	}))

	kc, err := a.kafka.Open()
	if err != nil {
		return err
	}
	defer kc.Close()
	reader := kc.Reader(a.kafka.RequestsTopic, a.detector.BatchSize) // a batch's worth read ahead
	scores := kc.Writer(a.kafka.ScoresTopic)
	a.detector.TuneScoresWriter(scores)
	deadLetter := kc.DeadLetters()
	progress := service.NewProgress(a.http.StallTimeout)
	det := detector.New(a.detector, proc, progress.Watch(reader), scores, deadLetter, metrics, logger)

	ready := func(ctx context.Context) error {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		return nil
	}
	srv, err := service.NewServer(a.http, reg, ready, nil, logger)
	if err != nil {
		return err
	}
	srv.SetLive(progress.Live)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	runErr := det.Run(ctx)
	if runErr == nil && ctx.Err() == nil {
		runErr = errors.New("detector stopped unexpectedly")
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return errors.Join(runErr, kc.Close(), srv.Shutdown(shutdownCtx))
}

// registerBaselineStats exports the baseline cache's counts.
func registerBaselineStats(reg prometheus.Registerer, b *detector.Baselines) {
	for _, c := range []struct {
		name, help string
		value      func(detector.Stats) uint64
	}{
		{"fetches", "Requests sent to the baseline service.", func(s detector.Stats) uint64 { return s.Fetches }},
		{"not_modified", "Baseline revalidations answered 304: the cached model is current.", func(s detector.Stats) uint64 { return s.NotModified }},
		{"errors", "Failed baseline fetches (network, 5xx, bad body, incompatible model); the last good model is kept.", func(s detector.Stats) uint64 { return s.Errors }},
		{"incompatible", "Fetched baselines rejected because they score other features than the detector computes.", func(s detector.Stats) uint64 { return s.Incompatible }},
		{"unlisted", "Lookups of sites that requests name but the baseline service does not list: not scored, and never asked for.", func(s detector.Stats) uint64 { return s.Unlisted }},
		{"listings", "Requests for the baseline service's list of sites.", func(s detector.Stats) uint64 { return s.Listings }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "anomalyd", Subsystem: "detector", Name: "baseline_" + c.name + "_total", Help: c.help,
		}, func() float64 { return float64(c.value(b.Stats())) }))
	}
}
