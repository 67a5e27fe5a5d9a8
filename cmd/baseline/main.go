// Command baseline is the anomalyd service that owns ClickHouse: it ingests
// the requests topic into a ClickHouse table in large batches, builds a
// HBOS baseline per site from that history, and serves the baselines to the
// detectors over HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
)

const description = `baseline ingests request events from Kafka into ClickHouse, builds each
site's HBOS baseline from that history, and serves the baselines to detectors:
GET /v1/sites/{site}/baseline (with ETag), GET /v1/sites and
POST /v1/sites/{site}/rebuild. The window, identity, secret and field-map
flags must match the detectors'.`

func main() {
	var a app
	os.Exit(serviceMain(context.Background(), &a, os.Args[1:], os.Stderr))
}

// serviceMain runs the service with args and returns its exit code; tests
// call it with their own context and output.
func serviceMain(ctx context.Context, a *app, args []string, stderr io.Writer) int {
	return service.Main(ctx, a.service(), args, os.Getenv, stderr)
}

// app is the baseline service's configuration and wiring.
type app struct {
	kafka    service.KafkaConfig
	ch       service.ClickHouseConfig
	http     service.HTTPConfig
	features features.Config
	build    baseline.BuildConfig
	ingest   baseline.IngestConfig
	refresh  time.Duration
	rebuilds int
	table    string
	scores   string
	policy   string
}

func (a *app) service() service.Service {
	return service.Service{Name: "baseline", Description: description, RegisterFlags: a.registerFlags, Validate: a.validate, Run: a.run}
}

func (a *app) registerFlags(fs *flag.FlagSet) {
	a.kafka.RegisterFlags(fs, service.TopicRequests, service.TopicDeadLetter)
	a.ch.RegisterFlags(fs)
	a.http.RegisterFlags(fs, "127.0.0.1:8080")
	a.http.RegisterAdminFlag(fs, "rebuild baselines (POST /v1/sites/{site}/rebuild)")
	a.features.RegisterFlags(fs)
	a.build = baseline.DefaultBuildConfig()
	a.build.RegisterFlags(fs)
	a.ingest = baseline.DefaultIngestConfig()
	a.ingest.RegisterFlags(fs)
	fs.DurationVar(&a.refresh, "refresh", baseline.DefaultRefresh, "how old a site's baseline may get before it is built again; every site is rebuilt once per period")
	fs.IntVar(&a.rebuilds, "rebuild-limit", baseline.DefaultRebuildLimit, "most rebuilds asked through the API per minute, all sites together, each an aggregation in ClickHouse; more are answered 429 with Retry-After; 0 is no limit")
	fs.StringVar(&a.table, "requests-table", "requests", "ClickHouse table of request history, created if missing")
	fs.StringVar(&a.scores, "scores-table", "scores", "the publisher's ClickHouse table of scores (its -scores-table), where the site pages (GET /v1/sites/SITE/page) find recent detections; empty: none")
	a.kafka.RegisterGroupFlag(fs, "baseline")
	policy.RegisterFlags(fs, &a.policy)
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (a *app) validate() error {
	for _, v := range []interface{ Validate() error }{&a.kafka, &a.ch, &a.http, &a.features, &a.ingest} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	// The baseline computes the detectors' features: same window, same
	// feature set, and only windows the detectors would score. Its period
	// ends no later than ingest accepts requests.
	a.build.Window, a.build.Set, a.build.MinRequests = a.features.Window, a.features.Set(), a.features.MinRequests
	a.build.MaxAhead = a.ingest.EventTime.MaxAhead
	a.ingest.Cluster = a.ch.Cluster
	if err := a.build.Validate(); err != nil {
		return err
	}
	switch {
	case a.refresh <= 0:
		return fmt.Errorf("-refresh must be positive, got %v", a.refresh)
	case a.rebuilds < 0:
		return fmt.Errorf("-rebuild-limit must not be negative, got %d", a.rebuilds)
	case !tableName.MatchString(a.table):
		return fmt.Errorf("-requests-table: %q is not a plain table name", a.table)
	case a.scores != "" && !tableName.MatchString(a.scores):
		return fmt.Errorf("-scores-table: %q is not a plain table name", a.scores)
	}
	if a.policy != "" {
		if _, err := policy.Load(a.policy); err != nil {
			return fmt.Errorf("-policy: %w", err)
		}
	}
	return nil
}

func (a *app) run(ctx context.Context, logger *slog.Logger) error {
	conn, err := a.ch.Open()
	if err != nil {
		return err
	}
	defer conn.Close()
	id, err := features.NewIdentity(a.features.Identity, []byte(a.features.Secret))
	if err != nil {
		return err
	}
	conv, err := baseline.NewConverter(a.features.Fields, a.features.Window, id, a.features.Classifier())
	if err != nil {
		return err
	}
	reg := service.NewRegistry()
	metrics := baseline.NewMetrics(reg)
	baselines := baseline.New(conn, a.table, a.build, a.refresh, metrics, logger)
	baselines.LimitRebuilds(a.rebuilds)
	pw, err := policy.Watch(ctx, a.policy, reg, logger)
	if err != nil {
		return fmt.Errorf("-policy: %w", err)
	}
	baselines.SetPolicy(pw.Policy)
	conv.SetPolicy(pw.Policy, a.features.Classes)
	baselines.SetScoresTable(a.scores)

	kc, err := a.kafka.Open()
	if err != nil {
		return err
	}
	defer kc.Close()
	reader := kc.Reader(a.kafka.RequestsTopic, 0)
	deadLetter := kc.DeadLetters()
	progress := service.NewProgress(a.http.StallTimeout)
	ingester := baseline.NewIngester(a.ingest, progress.Watch(reader), deadLetter, conn, a.table, conv, baselines, metrics, logger)

	srv, err := service.NewServer(a.http, reg, baselines.Ready, baselines.Handler(), logger)
	if err != nil {
		return err
	}
	srv.SetLive(progress.Live)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	ingestDone := make(chan error, 1)
	go func() { ingestDone <- ingester.Run(ctx) }()
	// The builds stop with the ingest: a service whose ingest failed must
	// exit, so that its orchestrator starts it again, not go on serving
	// baselines that no longer learn.
	buildsCtx, stopBuilds := context.WithCancel(ctx)
	defer stopBuilds()
	buildsDone := make(chan struct{})
	go func() { baselines.Run(buildsCtx); close(buildsDone) }()

	var runErr error
	select {
	case <-ctx.Done():
		runErr = <-ingestDone // the last batch is inserted and committed
	case runErr = <-ingestDone:
		if runErr == nil {
			runErr = errors.New("ingest stopped unexpectedly")
		}
	}
	stopBuilds()
	<-buildsDone
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return errors.Join(runErr, kc.Close(), srv.Shutdown(shutdownCtx))
}
