package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/internal/backtest"
	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/evaluate"
	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
)

const backtestHelp = `Usage: replay backtest -history FILE -traffic FILE [-report-json FILE] [service flags]

Runs the services' own baseline build, detector scoring and publisher
selection on JSON-lines files, without servers, in event time, as make demo
would with the same files: the history builds every site's baseline, then
the traffic is scored and its detections selected. It prints the baselines,
and, when the traffic has "label" fields, precision, recall and the human
false-positive rate, per scenario, for coordinated attacks and per kind of
person; without labels it prints every detection. -report-json writes the
same figures as JSON, with the fields of make demo's report. The service
flags below are the baseline service's, the detector's and the publisher's,
with their defaults; visitor ids are keyed with -identity-secret (a fixed
one by default).
`

// backtestReport is what -report-json writes.
type backtestReport struct {
	*backtest.Result
	evaluate.Quality
	WallSeconds float64 `json:"wall_seconds"`
}

func backtestCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("replay backtest", backtestHelp, stderr)
	cfg := backtest.DefaultConfig()
	cfg.Features.RegisterFlags(fs)
	cfg.Build.RegisterFlags(fs)
	cfg.Scoring.RegisterFlags(fs)
	cfg.Select.RegisterFlags(fs)
	history := fs.String("history", "", "JSON-lines `file` of history the baselines learn from (gzip allowed; - is stdin)")
	live := fs.String("traffic", "", "JSON-lines `file` of traffic to score (gzip allowed; - is stdin), with \"label\" fields for precision and recall")
	reportJSON := fs.String("report-json", "", "also write the report as JSON to `file`")
	if code, ok := parse(fs, args, getenv); !ok {
		return code
	}
	if cfg.Features.Secret == "" {
		cfg.Features.Secret = backtest.DefaultSecret
	}
	err := cfg.Validate()
	switch {
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q; every setting is a flag (see -h)", fs.Arg(0))
	case *history == "" || *live == "":
		err = errors.New("-history and -traffic are both required")
	case *history == "-" && *live == "-":
		err = errors.New("-history and -traffic cannot both be stdin")
	}
	if err != nil {
		fmt.Fprintf(stderr, "replay backtest: %v\n", err)
		return service.ExitUsage
	}
	start := time.Now()
	rep, err := runBacktest(ctx, cfg, *history, *live, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "replay backtest: %v\n", err)
		return service.ExitError
	}
	rep.WallSeconds = time.Since(start).Seconds()
	rep.writeText(stdout)
	if *reportJSON != "" {
		js, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(*reportJSON, append(js, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "replay backtest: writing the report: %v\n", err)
			return service.ExitError
		}
	}
	return service.ExitOK
}

// runBacktest runs the backtest and evaluates its detections against the
// traffic's labels.
func runBacktest(ctx context.Context, cfg backtest.Config, history, live string, stdin io.Reader) (*backtestReport, error) {
	id, err := features.NewIdentity(cfg.Features.Identity, []byte(cfg.Features.Secret))
	if err != nil {
		return nil, err
	}
	h, err := replay.Open(history, stdin)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	l, err := replay.Open(live, stdin)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	res, err := backtest.Run(ctx, cfg, h, l)
	if err != nil {
		return nil, err
	}
	var labels evaluate.Labels
	if live != "-" { // stdin cannot be read twice: no labels
		scan, err := evaluate.ScanFile(ctx, live, stdin, cfg.Features.Fields, id, cfg.Features.Classifier())
		if err != nil {
			return nil, err
		}
		labels = scan.Labels
	}
	return &backtestReport{Result: res, Quality: evaluate.Evaluate(res.Detections, labels)}, nil
}

// writeText prints the report for people.
func (r *backtestReport) writeText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	num := evaluate.Num
	p("=== anomalyd backtest report ===\n")
	p("history   %s events\n", num(r.HistoryEvents))
	var sites int
	for _, s := range r.Sites {
		if s.Site != baseline.Pooled {
			sites++
		}
	}
	p("baselines %d sites, and pooled over every site (*), per traffic class:\n", sites)
	for _, s := range r.Sites {
		var classes []string
		for _, c := range s.Classes {
			if c.Status == baseline.StatusOK {
				classes = append(classes, fmt.Sprintf("%s %s windows (%d visitors left out as bots), threshold %.1f", c.Class, num(int64(c.Windows)), c.Suspects, c.Threshold))
			} else {
				classes = append(classes, c.Class+" "+c.Status)
			}
		}
		if s.Status == baseline.StatusError && len(s.Classes) == 0 {
			classes = append(classes, "ERROR: "+s.Error)
		}
		p("          %-22s %s\n", s.Site, strings.Join(classes, "; "))
	}
	p("live      %s events", num(r.Events))
	if r.Malformed > 0 {
		p(" (%s lines of history and traffic the services would dead-letter)", num(r.Malformed))
	}
	p("\n")
	p("output    %s scores, %s detections of %s visitors\n", num(r.Scores), num(r.Quality.Detections), num(int64(r.DetectedVisitors)))
	r.Quality.WriteText(w)
	if r.Humans == nil {
		p("detections (detected_at site visitor score > threshold, expires_at)\n")
		for _, d := range r.Result.Detections {
			p("  %s %s %s %.2f > %.2f, %s\n", d.DetectedAt.Format(time.RFC3339), d.Site, d.Visitor, d.Score, d.Threshold, d.ExpiresAt.Format(time.RFC3339))
		}
	}
	p("wall time %s\n", (time.Duration(r.WallSeconds * float64(time.Second))).Round(100*time.Millisecond))
}
