// Command demo runs the whole anomalyd pipeline on this machine and reports
// what it found: `make demo`. It starts redis-server, clickhouse-server, an
// in-process Kafka broker and the three services (internal/pipeline),
// replays hours of human history so that the baseline service learns every
// site, streams live traffic with labelled bots through the detector and the
// publisher, and then compares the detections with the labels.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/traffic"
)

const usageText = `Usage: demo [flags]

demo starts the anomalyd pipeline locally (redis-server, clickhouse-server,
an in-process Kafka broker, and the baseline, detector and publisher
services built next to it), then:

  1. history  replays human-only traffic (-history-span of it, or -history
              FILE) as fast as it can into the requests topic, waits until
              the baseline service has stored it, and builds every site's
              baseline (POST /v1/sites/{site}/rebuild); the detector reads
              it into the visitors' windows but scores nothing before the
              live traffic's start (detector -score-from);
  2. live     streams traffic with labelled bots of every scenario (or
              -traffic FILE), paced to last -duration, showing progress;
  3. drain    waits until the detector and the publisher have caught up;
  4. report   prints events, rates, scores, detections and, when the
              traffic has "label" fields, precision and recall per visitor
              (site and visitor id), per bot scenario, and the top
              detections with why; -report-json writes the same as JSON.

Generated traffic lies in the past (the live phase ends an hour before now)
and has the same human density in both phases, so the history describes the
live humans. Files are replayed whatever their dates: the demo gives the
services -max-event-age 0 and a -max-event-ahead of years. The services' logs are in a temporary directory, shown at the
start, removed at the end unless -keep-logs (or the run fails). Ctrl-C stops
everything. Exit status: 0 after a report, 1 on failure, 2 for bad flags,
130 when interrupted.

Flags:
`

const examples = `
Examples:
  make demo
  make demo DEMO_FLAGS='-duration 0'                      # as fast as it goes
  make demo DEMO_FLAGS='-bots 30 -report-json bin/demo.json'
  make demo DEMO_FLAGS='-baseline-flags "-min-windows 500 -contamination 0.01"'
  bin/demo -traffic traffic.jsonl.gz -history history.jsonl.gz
`

// options are the demo's flags.
type options struct {
	kafka        string
	bin          string
	duration     time.Duration
	reportJSON   string
	historyFile  string
	trafficFile  string
	sites        int
	visitors     int
	events       int
	liveSpan     time.Duration
	historySpan  time.Duration
	bots         traffic.Bots
	seed         uint64
	options      traffic.Options
	keepLogs     bool
	hold         bool
	drainTimeout time.Duration
	serviceFlags map[pipeline.Name]*string
}

func main() {
	// Ctrl-C cancels ctx and the demo stops what it started, which takes
	// a few seconds at most. Later signals are ignored meanwhile rather
	// than fatal: some senders (timeout(1), process-group kills) deliver
	// two, and dying halfway would leave the temporary directory behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the demo with args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := o.flagSet(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.validate(fs); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 2
	}
	d := &demo{opts: o, stdout: stdout, stderr: stderr}
	err := d.run(ctx)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "demo: interrupted: %v\n", err)
		return 130
	default:
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
}

func (o *options) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageText)
		fs.PrintDefaults()
		fmt.Fprint(out, examples)
	}
	fs.StringVar(&o.kafka, "kafka", pipeline.DefaultKafkaAddr, "`host:port` the in-process Kafka broker listens on (loopback only; port 0 picks a free one); kcat and other clients can use it while the demo runs")
	fs.StringVar(&o.bin, "bin", "", "`directory` of the baseline, detector and publisher binaries (default: the demo's own directory, bin/ under make)")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long the live phase lasts: its events are paced to fit; 0 sends them as fast as the broker takes them")
	fs.StringVar(&o.reportJSON, "report-json", "", "also write the report as JSON to `file`")
	fs.StringVar(&o.historyFile, "history", "", "replay this JSONL `file` (Logpush field names, gzip allowed) as the history instead of generating it; its timestamps should precede the live traffic's")
	fs.StringVar(&o.trafficFile, "traffic", "", "stream this JSONL `file` (Logpush field names, gzip allowed; \"label\" fields for precision and recall) as the live traffic instead of generating it")
	fs.IntVar(&o.sites, "sites", 6, "generated traffic: number of sites")
	fs.IntVar(&o.visitors, "visitors", 20000, "generated traffic: human visitor population (Zipf-skewed activity: not all appear)")
	fs.IntVar(&o.events, "events", 150000, "generated traffic: human requests in the live phase; bot requests come on top, and the history gets the same density (events × history-span / live-span)")
	fs.DurationVar(&o.liveSpan, "live-span", 30*time.Minute, "generated traffic: event time the live phase covers (it is replayed in -duration)")
	fs.DurationVar(&o.historySpan, "history-span", 2*time.Hour, "generated traffic: event time the history covers, before the live phase")
	o.bots = traffic.EveryScenario(10)
	fs.Var(&o.bots, "bots", "generated traffic: bot visitors per scenario in the live phase, `n` for every scenario or scenario=n[,...] of "+traffic.ScenarioNames()+"; none for humans only")
	fs.Uint64Var(&o.seed, "seed", 1, "generated traffic: random seed; the same flags and seed give the same traffic")
	fs.Var(&o.options, "options", "generated traffic: none (the classic shops and four bots), realistic, or parts of it (people, sites, automation, spread, campaigns, surges, fields), in both phases: replay generate -h explains them")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the directory of logs, data and generated traffic (it is always kept when the run fails)")
	fs.BoolVar(&o.hold, "hold", false, "after the report, keep the stack running until Ctrl-C, to look around with kcat or curl")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 90*time.Second, "longest wait for the services to catch up after a phase")
	o.serviceFlags = make(map[pipeline.Name]*string)
	for _, n := range pipeline.Names() {
		o.serviceFlags[n] = fs.String(string(n)+"-flags", "", fmt.Sprintf("extra `flags` of the %s service, space-separated (e.g. \"%s\"), after the demo's own, so they win; bin/%s -h lists them", n, exampleFlags[n], n))
	}
	return fs
}

// exampleFlags illustrate each -X-flags in -h.
var exampleFlags = map[pipeline.Name]string{
	pipeline.Baseline:  "-min-windows 500 -contamination 0.01",
	pipeline.Detector:  "-rescore-interval 10s",
	pipeline.Publisher: "-min-hits 2",
}

func (o *options) validate(fs *flag.FlagSet) error {
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q: every setting is a flag (-h lists them)", fs.Args())
	case o.duration < 0:
		return fmt.Errorf("-duration %v: must be 0 or more", o.duration)
	case o.drainTimeout <= 0:
		return fmt.Errorf("-drain-timeout %v: must be positive", o.drainTimeout)
	case o.liveSpan <= 0 || o.historySpan <= 0:
		return errors.New("-live-span and -history-span must be positive")
	case o.events <= 0 && o.trafficFile == "":
		return errors.New("-events must be positive")
	case o.sites <= 0 || o.visitors <= 0:
		return errors.New("-sites and -visitors must be positive")
	}
	return nil
}

// replayAhead is how far ahead of the clock the services accept events of
// -history and -traffic files: those are replayed whatever their dates, and
// a labelled file made elsewhere may well be dated ahead of this machine.
const replayAhead = 10 * 365 * 24 * time.Hour

// eventTimeFlags are the services' event-time bounds for the demo's
// traffic, before the -X-flags. The services refuse events far from their
// clocks (see the README's "Event time"); the demo replays history on
// purpose, so it widens the bounds to take its inputs: any age and dates
// years ahead for files, and the generated span, which ends an hour ago.
func (o *options) eventTimeFlags() []string {
	if o.historyFile != "" || o.trafficFile != "" {
		return []string{"-max-event-age", "0", "-max-event-ahead", replayAhead.String()}
	}
	age := max(service.DefaultMaxEventAge, o.historySpan+o.liveSpan+2*time.Hour)
	return []string{"-max-event-age", age.String()}
}

// binDir returns -bin, else the directory of the running executable.
func (o *options) binDir() (string, error) {
	if o.bin != "" {
		return o.bin, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the service binaries (set -bin): %w", err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("finding the service binaries (set -bin): %w", err)
	}
	return filepath.Dir(exe), nil
}
