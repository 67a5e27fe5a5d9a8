// Command replay is the operator's traffic tool: it writes synthetic
// request events as JSON lines (replay generate), produces JSON-lines
// events, recorded or generated, to the requests topic (replay send),
// keyed as the detectors partition visitors, and runs the services' code on
// JSON-lines files without servers (replay backtest).
package main

import (
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/service"
)

const usage = `Usage:
  replay generate [flags]        write synthetic traffic as JSON lines
  replay send [flags] FILE...    produce JSON-lines request events to Kafka
  replay backtest -history FILE -traffic FILE [flags]
                                 build baselines, score and select detections
                                 on files as the services would, and report

"replay generate -h", "replay send -h" and "replay backtest -h" explain the
flags of each. Every
flag can also be set by its ANOMALYD_* environment variable, as in the
services; the command line wins.
` + examples

const examples = `
Examples:
  # 1M human requests of 100k visitors on 20 sites, with 40 labelled bots
  # on top, gzipped:
  replay generate -events 1000000 -o traffic.jsonl.gz

  # Send them to the requests topic at 50,000 events/s:
  replay send -brokers kafka-1:9092,kafka-2:9092 -rate 50000 traffic.jsonl.gz

  # Or in one go, as fast as the brokers take them:
  replay generate -events 100000 | replay send -brokers kafka-1:9092 -

  # Try settings on logs before the services run them:
  replay backtest -history last-week.jsonl.gz -traffic today.jsonl.gz -contamination 0.01
`

const generateHelp = `Usage: replay generate [flags]

Writes deterministic synthetic traffic as JSON lines with Cloudflare Logpush
field names, in time order: -events human requests of -visitors visitors on
-sites sites, spread over -duration from -start, and the requests of -bots
bot visitors on top (each scenario at its own rate, from a start in the
first half of the span). -options makes it richer: kinds of people, site
kinds, the automation sites want, bots in the history, coordinated attacks,
people who come at once for a page shared widely (surges), network fields
(-options realistic for all of them). With -labels each line
has a "label" field, human (people and wanted automation) or the scenario,
and "profile" (the kind of visitor) and "group" (a coordinated attack)
where they apply, to check detections against; the pipeline ignores them.
Output streams, so memory does not grow with -events.
`

const sendHelp = `Usage: replay send [flags] FILE...

Produces every non-empty line of each FILE (- is stdin; gzip is detected
and unpacked) as one message to the requests topic, in order, with all
brokers' acknowledgement. A message is keyed site|ClientIP (-identity ip or
ip+ua) or site|fingerprint (ja3, ja4), from the event decoded with -fields,
so that a visitor's events share a partition; the balancer is murmur2, the
Java client's. A line that does not decode is still sent, unchanged and
without a key, for the pipeline to dead-letter; the first few are reported
as FILE:LINE. Progress goes to stderr every -progress, then a summary.
Exits 1 if any event could not be sent.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// After the first signal the default action returns, so that a second
	// one kills a replay stuck reading a terminal.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is the command with its environment, returning the exit code: 0 on
// success and for -h, 1 on failure, 2 for bad flags or arguments.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return service.ExitUsage
	}
	switch args[0] {
	case "generate":
		return generate(ctx, args[1:], stdout, stderr, getenv)
	case "send":
		return send(ctx, args[1:], stdin, stderr, getenv)
	case "backtest":
		return backtestCmd(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return service.ExitOK
	}
	fmt.Fprintf(stderr, "replay: unknown command %q\n\n%s", args[0], usage)
	return service.ExitUsage
}

func generate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("replay generate", generateHelp, stderr)
	cfg := replay.DefaultGenerateConfig()
	cfg.RegisterFlags(fs)
	out := fs.String("o", "-", "output `file`; - is stdout; a name ending in .gz is gzipped")
	if code, ok := parse(fs, args, getenv); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replay generate: unexpected argument %q; every setting is a flag (see -h)\n", fs.Arg(0))
		return service.ExitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "replay generate: %v\n", err)
		return service.ExitUsage
	}
	n, err := writeGenerated(ctx, cfg, *out, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "replay generate: %v\n", err)
		return service.ExitError
	}
	fmt.Fprintf(stderr, "replay generate: wrote %d events to %s\n", n, outName(*out))
	return service.ExitOK
}

// writeGenerated writes cfg's traffic to path, or stdout for "-". A file
// that cannot be finished is removed, so that no truncated file is left to
// replay by mistake.
func writeGenerated(ctx context.Context, cfg replay.GenerateConfig, path string, stdout io.Writer) (n int64, err error) {
	if path == "-" {
		return replay.Generate(ctx, cfg, stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	w := io.Writer(f)
	var zw *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		zw = gzip.NewWriter(f)
		w = zw
	}
	if n, err = replay.Generate(ctx, cfg, w); err != nil {
		return n, fmt.Errorf("writing %s: %w", path, err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return n, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return n, nil
}

func send(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("replay send", sendHelp, stderr)
	var kafka service.KafkaConfig
	kafka.RegisterFlags(fs, service.TopicRequests)
	cfg := replay.DefaultConfig()
	cfg.RegisterFlags(fs)
	if code, ok := parse(fs, args, getenv); !ok {
		return code
	}
	inputs := fs.Args()
	err := kafka.Validate()
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil && len(inputs) == 0 {
		err = errors.New("no input: name the JSON-lines FILEs to send, or - for stdin")
	}
	if err != nil {
		fmt.Fprintf(stderr, "replay send: %v\n", err)
		return service.ExitUsage
	}
	// Every file must be there before anything is sent, so that a typo
	// does not leave a replay half done.
	for _, in := range inputs {
		if in == "-" {
			continue
		}
		if _, err := os.Stat(in); err != nil {
			fmt.Fprintf(stderr, "replay send: %v\n", err)
			return service.ExitError
		}
	}

	cfg.Warn = func(e *replay.LineError) {
		fmt.Fprintf(stderr, "replay send: %v (sent without a key)\n", e)
	}
	cfg.OnProgress = func(st replay.Stats) {
		fmt.Fprintf(stderr, "replay send: %d events sent in %.0f s, %.0f events/s\n", st.Events, st.Elapsed.Seconds(), st.Rate())
	}
	w := replay.NewKafkaWriter(kafka.Brokers, kafka.RequestsTopic, cfg.Batch)
	w.BatchBytes = kafka.BatchBytes()
	_, transport, err := kafka.Clients()
	if err != nil {
		fmt.Fprintf(stderr, "replay send: %v\n", err)
		return service.ExitUsage
	}
	w.SetTransport(transport)
	s, err := replay.NewSender(cfg, w)
	if err == nil {
		for _, in := range inputs {
			if err = sendInput(ctx, s, in, stdin); err != nil {
				break
			}
		}
	}
	st := s.Stats() // before Close, which only flushes what err left behind
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	fmt.Fprintf(stderr, "replay send: sent to topic %s: %v\n", kafka.RequestsTopic, st)
	if n := st.Malformed + st.Unkeyed; n > replay.MaxWarnings {
		fmt.Fprintf(stderr, "replay send: %d lines went without a key; the first %d are listed above\n", n, replay.MaxWarnings)
	}
	if err != nil {
		fmt.Fprintf(stderr, "replay send: %v\n", err)
		return service.ExitError
	}
	return service.ExitOK
}

func sendInput(ctx context.Context, s *replay.Sender, path string, stdin io.Reader) error {
	r, err := replay.Open(path, stdin)
	if err != nil {
		return err
	}
	defer r.Close()
	return s.Send(ctx, outName(path), r)
}

// outName names an input or output in messages.
func outName(path string) string {
	if path == "-" {
		return "stdin"
	}
	return path
}

// newFlagSet returns a flag set whose -h prints help, the examples and
// every flag with its environment variable.
func newFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s%s\nFlags (each also read from the environment variable shown, if not given):\n", help, examples)
		// As service.SetUsage does: a copy whose usages name the
		// variables, so that PrintDefaults formats them.
		cp := flag.NewFlagSet(name, flag.ContinueOnError)
		cp.SetOutput(stderr)
		fs.VisitAll(func(f *flag.Flag) {
			cp.Var(f.Value, f.Name, fmt.Sprintf("%s (env %s)", f.Usage, service.EnvName(f.Name)))
			cp.Lookup(f.Name).DefValue = f.DefValue
		})
		cp.PrintDefaults()
	}
	return fs
}

// parse parses args with environment fallbacks. It returns ok false with
// the exit code when the command must stop: 0 after -h, 2 for an error,
// which it has printed.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) (code int, ok bool) {
	if err := service.ParseFlags(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return service.ExitOK, false
		}
		return service.ExitUsage, false
	}
	return 0, true
}
