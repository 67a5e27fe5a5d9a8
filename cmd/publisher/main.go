// Command publisher is the anomalyd service between the detectors and the
// edge: it stores every score record in ClickHouse for later analysis and
// publishes the detections among them to the edge's topic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/publisher"
	"github.com/anomalyd/anomalyd/internal/service"
)

const description = `publisher reads score records from Kafka, stores every one in ClickHouse in
large batches, and publishes the detections among them to the edge's topic,
keyed site|visitor: scores above their site's threshold that pass the evidence
gates (-min-margin, -min-hits), once per visitor per -detection-ttl unless the
score rises by -rise-margin. Nothing of a site off or simulated in the
-policy file is published, nor a visitor it allows; SIGHUP, or a change of the
file, re-reads it. Offsets are committed only after the scores are stored and
the detections acknowledged.`

// defaultListen is the publisher's -listen default: next to the baseline
// service's 8080 and the detector's 8081, so that all three can run on one
// host as they come.
const defaultListen = "127.0.0.1:8082"

func main() {
	var a app
	os.Exit(serviceMain(context.Background(), &a, os.Args[1:], os.Stderr))
}

// serviceMain runs the service with args and returns its exit code; tests
// call it with their own context and output.
func serviceMain(ctx context.Context, a *app, args []string, stderr io.Writer) int {
	return service.Main(ctx, a.service(), args, os.Getenv, stderr)
}

// app is the publisher's configuration and wiring.
type app struct {
	kafka service.KafkaConfig
	ch    service.ClickHouseConfig
	http  service.HTTPConfig
	pub   publisher.Config

	policyFile string
	// reload, if set, replaces SIGHUP as the policy reload trigger, so
	// that tests need not signal their own process.
	reload <-chan os.Signal
}

func (a *app) service() service.Service {
	return service.Service{Name: "publisher", Description: description, RegisterFlags: a.registerFlags, Validate: a.validate, Run: a.run}
}

func (a *app) registerFlags(fs *flag.FlagSet) {
	a.kafka.RegisterFlags(fs, service.TopicScores, service.TopicDetections, service.TopicDeadLetter)
	a.ch.RegisterFlags(fs)
	a.http.RegisterFlags(fs, defaultListen)
	a.pub = publisher.DefaultConfig()
	a.pub.RegisterFlags(fs)
	a.kafka.RegisterGroupFlag(fs, "publisher")
	policy.RegisterFlags(fs, &a.policyFile)
}

// validate checks the flags and reads the policy file: a bad file at
// start is a configuration error, reported like a bad flag (exit 2).
func (a *app) validate() error {
	for _, v := range []interface{ Validate() error }{&a.kafka, &a.ch, &a.http, &a.pub} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if a.policyFile != "" {
		if _, err := policy.Load(a.policyFile); err != nil {
			return fmt.Errorf("-policy: %w", err)
		}
	}
	a.pub.Cluster = a.ch.Cluster
	return nil
}

func (a *app) run(ctx context.Context, logger *slog.Logger) error {
	// Catch SIGHUP first: its default action would kill the process.
	reload := a.reload
	if reload == nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		reload = hup
	}

	conn, err := a.ch.Open()
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := service.NewRegistry()
	metrics := publisher.NewMetrics(reg)
	pw, err := policy.NewWatcher(a.policyFile, reg, logger)
	if err != nil {
		return fmt.Errorf("-policy: %w", err)
	}
	go pw.Run(ctx, reload, policy.DefaultCheckEvery)

	kc, err := a.kafka.Open()
	if err != nil {
		return err
	}
	defer kc.Close()
	reader := kc.Reader(a.kafka.ScoresTopic, 0)
	detections := a.pub.DetectionsWriter(kc.Writer(a.kafka.DetectionsTopic))
	deadLetter := kc.DeadLetters()
	progress := service.NewProgress(a.http.StallTimeout)
	pub := publisher.New(a.pub, progress.Watch(reader), detections, deadLetter, conn, metrics, logger)
	pub.SetPolicy(pw.Policy)
	pub.RestoreFrom(publisher.TopicHistory{Brokers: a.kafka.Brokers, Topic: a.kafka.DetectionsTopic, Dialer: kc.Dialer()})

	srv, err := service.NewServer(a.http, reg, pub.Ready, nil, logger)
	if err != nil {
		return err
	}
	srv.SetLive(progress.Live)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()

	runErr := <-done // after ctx is done: the last batch is flushed and committed
	if runErr == nil && ctx.Err() == nil {
		runErr = errors.New("publisher stopped unexpectedly")
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return errors.Join(runErr, kc.Close(), srv.Shutdown(shutdownCtx))
}
