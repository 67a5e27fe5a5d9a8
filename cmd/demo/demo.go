package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/anomalyd/anomalyd/internal/evaluate"
	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// Settings the demo gives the services before the -X-flags.
const (
	// The baselines are built once, from the history, when the demo asks;
	// a refresh during the live phase would learn the bots.
	baselineRefresh = "1h"
	// The detector asks the baseline service about a site during the
	// history, before the site has a baseline, and remembers the 404 for
	// this long; short, so that the live phase is scored from its start.
	detectorRevalidate = "2s"
	// progressEvery is how often the live phase shows progress.
	progressEvery = 2 * time.Second
	// pollEvery is how often waits scrape the services' metrics.
	pollEvery = 200 * time.Millisecond
)

// Metric names the demo reads.
const (
	metricDetectorEvents  = "anomalyd_detector_events_total"
	metricDetectorScored  = "anomalyd_detector_scored_total"
	metricBaselineRows    = "anomalyd_baseline_ingest_rows_total"
	metricBaselineDead    = "anomalyd_baseline_dead_letters_total"
	metricPublisherRead   = "anomalyd_publisher_scores_read_total"
	metricPublisherPublic = "anomalyd_publisher_detections_published_total"
)

// demo is one run.
type demo struct {
	opts           options
	stdout, stderr io.Writer
	started        time.Time

	dir      string // logs, data and generated traffic
	secret   string
	identity *features.Identity
	replay   replay.Config
	stack    *pipeline.Stack
	dets     *detectionReader
	report   Report
}

// run runs the phases, prints the report and stops everything.
func (d *demo) run(ctx context.Context) (err error) {
	d.started = time.Now()
	d.replay = replay.DefaultConfig()
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("generating the identity secret: %w", err)
	}
	d.secret = hex.EncodeToString(secret)
	if d.identity, err = features.NewIdentity(d.replay.Identity, []byte(d.secret)); err != nil {
		return fmt.Errorf("visitor identity: %w", err)
	}
	bin, err := d.opts.binDir()
	if err != nil {
		return err
	}
	if d.dir, err = os.MkdirTemp("", "anomalyd-demo-"); err != nil {
		return fmt.Errorf("creating the demo directory: %w", err)
	}
	d.logf("demo: logs, data and traffic in %s", d.dir)
	defer func() {
		if d.stack != nil {
			if cerr := d.stack.Close(); cerr != nil && ctx.Err() == nil {
				err = errors.Join(err, cerr)
			}
		}
		// Kept after a failure, for its logs; not after Ctrl-C.
		if d.opts.keepLogs || (err != nil && ctx.Err() == nil) {
			d.logf("demo: kept %s (service logs in %s)", d.dir, filepath.Join(d.dir, "logs"))
		} else {
			os.RemoveAll(d.dir)
		}
	}()

	live, liveStart, err := d.planLive(ctx)
	if err != nil {
		return err
	}
	// The servers and the traffic files are independent: prepare both at
	// once.
	var hist input
	g, gctx := errgroup.WithContext(ctx)
	// Not gctx: the stack lives until ctx ends, and gctx ends with Wait.
	g.Go(func() error { return d.startStack(ctx, bin, liveStart) })
	g.Go(func() (err error) {
		hist, live, err = d.prepareTraffic(gctx, live, liveStart)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if d.dets, err = startDetectionReader(ctx, d.stack.Brokers()); err != nil {
		return err
	}
	defer d.dets.close()

	if err := d.history(ctx, hist); err != nil {
		return err
	}
	if err := d.live(ctx, live); err != nil {
		return err
	}
	d.finish(live)
	if err := d.writeReport(); err != nil {
		return err
	}
	if d.opts.hold {
		d.logf("demo: the stack keeps running; Ctrl-C stops it")
		<-ctx.Done()
		return nil
	}
	if len(d.report.Sites) > 0 && !anyBaseline(d.report.Sites) {
		return errors.New("no site got a baseline, so nothing was scored: give the history more visitor-windows (-events, -history-span) or lower -baseline-flags \"-min-windows N\"")
	}
	return nil
}

// startStack starts the pipeline with the demo's service settings. The
// detector scores nothing before liveStart: the history only fills the
// visitors' windows, as replay backtest has it. The detector reads the
// history more slowly than it is replayed, and asks for baselines as it
// goes, so it would score much of it with baselines built on the part
// stored by then, and the publisher would carry what those found (hits,
// crowds) into the live phase.
func (d *demo) startStack(ctx context.Context, bin string, liveStart time.Time) error {
	flags := map[pipeline.Name][]string{
		pipeline.Baseline: {"-refresh", baselineRefresh},
		pipeline.Detector: {"-baseline-revalidate", detectorRevalidate, "-score-from", liveStart.UTC().Format(time.RFC3339Nano)},
	}
	for _, n := range pipeline.Names() {
		flags[n] = append(flags[n], d.opts.eventTimeFlags()...)
		flags[n] = append(flags[n], strings.Fields(*d.opts.serviceFlags[n])...)
	}
	st, err := pipeline.Start(ctx, pipeline.Config{
		BinDir:         bin,
		Dir:            d.dir,
		KafkaAddr:      d.opts.kafka,
		IdentitySecret: d.secret,
		Flags:          flags,
	})
	if err != nil {
		return err
	}
	d.stack = st
	brokers := strings.Join(st.Brokers(), ",")
	d.logf("demo: stack ready: kafka %s (topics requests, scores, detections, deadletter), redis %s, clickhouse %s",
		brokers, st.Redis().Addr(), st.ClickHouse().Addr())
	for _, n := range pipeline.Names() {
		svc := st.Service(n)
		d.logf("demo:   %-9s %s  log %s", n, svc.URL(), svc.LogPath())
	}
	d.logf("demo: while it runs, watch detections with  kcat -C -b %s -t detections -o beginning", brokers)
	d.logf("demo: and produce requests (key site|client IP, murmur2 like the services expect) with")
	d.logf("demo:   echo 'shop.example.com|192.0.2.1#{\"EdgeStartTimestamp\":\"%s\",\"ZoneName\":\"shop.example.com\",\"ClientIP\":\"192.0.2.1\",\"ClientRequestPath\":\"/\"}' | kcat -P -b %s -t requests -K '#' -X partitioner=murmur2_random",
		time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), brokers)
	d.logf("demo:   or replay a JSONL file: bin/replay send -brokers %s FILE", brokers)
	return nil
}

// input is one phase's traffic file and what is known of it.
type input struct {
	path string
	scan evaluate.Scan
}

// planLive returns when the live phase's traffic begins: the first event
// of -traffic, whose file it scans for that and for its labels, else the
// start of the live traffic to generate, which ends an hour before now.
func (d *demo) planLive(ctx context.Context) (live input, start time.Time, err error) {
	if d.opts.trafficFile == "" {
		end := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
		return live, end.Add(-d.opts.liveSpan), nil
	}
	live.path = d.opts.trafficFile
	if live.scan, err = evaluate.ScanFile(ctx, live.path, os.Stdin, d.replay.Fields, d.identity, features.DefaultClassifier()); err != nil {
		return live, start, err
	}
	if live.scan.First.IsZero() {
		return live, start, fmt.Errorf("%s: no event decodes", live.path)
	}
	return live, live.scan.First, nil
}

// prepareTraffic generates the history and live traffic files that -history
// and -traffic do not name, in the past (the services refuse events ahead
// of their clocks, and the live phase must follow the history), the live
// traffic from liveStart. The live traffic is scanned for its labels;
// planned is what planLive found of it.
func (d *demo) prepareTraffic(ctx context.Context, planned input, liveStart time.Time) (hist, live input, err error) {
	o := d.opts
	live = planned
	gen := func(path string, start time.Time, span time.Duration, events int, bots map[traffic.Scenario]int) (input, error) {
		cfg := replay.GenerateConfig{Labels: true, Traffic: traffic.Config{
			Sites: o.sites, Visitors: o.visitors, Events: events, Start: start, Duration: span,
			Seed: o.seed, Skew: traffic.DefaultConfig().Skew, SkewOffset: traffic.DefaultConfig().SkewOffset, Bots: bots,
			Options: o.options,
		}}
		f, err := os.Create(path)
		if err != nil {
			return input{}, fmt.Errorf("generating traffic: %w", err)
		}
		defer f.Close()
		if _, err := replay.Generate(ctx, cfg, f); err != nil {
			return input{}, err
		}
		if err := f.Close(); err != nil {
			return input{}, fmt.Errorf("generating traffic: %w", err)
		}
		return input{path: path}, nil
	}
	histEvents := int(float64(o.events) * o.historySpan.Seconds() / o.liveSpan.Seconds())
	dir := filepath.Join(d.dir, "traffic")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return hist, live, fmt.Errorf("generating traffic: %w", err)
	}

	if o.trafficFile == "" {
		if live, err = gen(filepath.Join(dir, "live.jsonl"), liveStart, o.liveSpan, o.events, o.bots); err != nil {
			return hist, live, err
		}
		if live.scan, err = evaluate.ScanFile(ctx, live.path, os.Stdin, d.replay.Fields, d.identity, features.DefaultClassifier()); err != nil {
			return hist, live, err
		}
	}
	if o.historyFile != "" {
		hist.path = o.historyFile
		if o.trafficFile == "" {
			// A live phase generated before this history's end would
			// be late for the detector's windows: check rather than
			// pay a second generation.
			if hist.scan, err = evaluate.ScanFile(ctx, hist.path, os.Stdin, d.replay.Fields, d.identity, features.DefaultClassifier()); err != nil {
				return hist, live, err
			}
			if hist.scan.Last.After(liveStart) {
				return hist, live, fmt.Errorf("-history %s ends at %s, after the generated live traffic starts (%s): give -traffic too, or a history that ends earlier",
					hist.path, hist.scan.Last.Format(time.RFC3339), liveStart.Format(time.RFC3339))
			}
		}
		return hist, live, nil
	}
	hist, err = gen(filepath.Join(dir, "history.jsonl"), liveStart.Add(-o.historySpan), o.historySpan, histEvents, nil)
	return hist, live, err
}

// history replays the history, waits until the baseline service has stored
// it, builds every site's baseline and waits until the detector has read
// it, so that the live phase starts on a quiet pipeline.
func (d *demo) history(ctx context.Context, in input) error {
	d.logf("demo: history: replaying %s as fast as possible", in.path)
	det := d.stack.Service(pipeline.Detector)
	start := time.Now()
	stats, err := d.send(ctx, "history", in.path, 0)
	if err != nil {
		return err
	}
	r := &d.report.History
	r.Events, r.SendSeconds, r.EventsPerSecond = stats.Events, stats.Elapsed.Seconds(), stats.Rate()
	d.progressDone()
	d.logf("demo: history: %s", stats)

	bl := d.stack.Service(pipeline.Baseline)
	err = d.waitFor(ctx, "the baseline service to store the history", func(ctx context.Context) (bool, string, error) {
		m, err := bl.Metrics(ctx)
		if err != nil {
			return false, "", err
		}
		rows, _ := m.Value(metricBaselineRows)
		dead, _ := m.Value(metricBaselineDead)
		return int64(rows+dead) >= stats.Events, fmt.Sprintf("%s of %s rows stored", num(int64(rows)), num(stats.Events)), nil
	})
	if err != nil {
		return err
	}
	if err := d.rebuild(ctx); err != nil {
		return err
	}
	var detDone time.Time
	err = d.waitFor(ctx, "the detector to read the history", func(ctx context.Context) (bool, string, error) {
		v, err := det.MetricsValue(ctx, metricDetectorEvents)
		if err != nil {
			return false, "", err
		}
		detDone = time.Now()
		return int64(v) >= stats.Events, fmt.Sprintf("%s of %s events read", num(int64(v)), num(stats.Events)), nil
	})
	if err != nil {
		return err
	}
	r.DetectorEventsPerSecond = float64(stats.Events) / detDone.Sub(start).Seconds()
	d.logf("demo: history: the detector read it at %s events/s (%.1fs after the replay began)",
		num(int64(r.DetectorEventsPerSecond)), detDone.Sub(start).Seconds())
	return nil
}

// rebuild builds the baselines of every site the baseline service knows,
// then those pooled over every site (the site "*"), and reports what judges
// each site's traffic classes.
func (d *demo) rebuild(ctx context.Context) error {
	bl := d.stack.Service(pipeline.Baseline)
	var sites []SiteReport
	if err := getJSON(ctx, bl, http.MethodGet, "/v1/sites", &sites); err != nil {
		return fmt.Errorf("listing sites: %w", err)
	}
	if len(sites) == 0 {
		return errors.New("the baseline service knows no site after the history")
	}
	start := time.Now()
	names := []string{}
	for _, s := range sites {
		if s.Site != pooledSite {
			names = append(names, s.Site)
		}
	}
	for _, site := range append(names, pooledSite) {
		err := getJSON(ctx, bl, http.MethodPost, "/v1/sites/"+site+"/rebuild", &SiteReport{})
		var he *httpError
		// 422 is too little history: served by the pool, or nothing.
		if err != nil && !(errors.As(err, &he) && he.status == http.StatusUnprocessableEntity) {
			return fmt.Errorf("rebuilding %s: %w", site, err)
		}
	}
	if err := getJSON(ctx, bl, http.MethodGet, "/v1/sites", &sites); err != nil {
		return fmt.Errorf("listing sites: %w", err)
	}
	d.report.Sites = sites
	for _, s := range sites {
		var classes []string
		for _, c := range s.Classes {
			switch {
			case c.Status == "ok":
				classes = append(classes, fmt.Sprintf("%s from %s visitor-windows", c.Class, num(int64(c.Windows))))
			case c.ServedBy != "":
				classes = append(classes, fmt.Sprintf("%s too little history, judged by %s", c.Class, c.ServedBy))
			default:
				classes = append(classes, fmt.Sprintf("%s NONE", c.Class))
				if s.Site != pooledSite {
					d.report.Warnings = append(d.report.Warnings, fmt.Sprintf("%s has no %s baseline: %s", s.Site, c.Class, c.Error))
				}
			}
		}
		d.logf("demo: baseline %-22s %s", s.Site, strings.Join(classes, "; "))
	}
	d.logf("demo: built the baselines of %d sites in %.1fs", len(names), time.Since(start).Seconds())
	return nil
}

// pooledSite names the baselines pooled over every site (baseline.Pooled).
const pooledSite = "*"

// anyBaseline reports whether any site's traffic gets judged.
func anyBaseline(sites []SiteReport) bool {
	for _, s := range sites {
		for _, c := range s.Classes {
			if c.Status == "ok" || c.ServedBy != "" {
				return true
			}
		}
	}
	return false
}

// live streams the live traffic, paced to -duration, then waits for the
// pipeline to drain.
func (d *demo) live(ctx context.Context, in input) error {
	det := d.stack.Service(pipeline.Detector)
	pub := d.stack.Service(pipeline.Publisher)
	base, err := det.Metrics(ctx)
	if err != nil {
		return err
	}
	detBase, _ := base.Value(metricDetectorEvents)
	scoredBase, _ := base.Value(metricDetectorScored)

	var rate float64
	if d.opts.duration > 0 {
		rate = max(float64(in.scan.Events)/d.opts.duration.Seconds(), replay.MinRate)
		d.logf("demo: live: streaming %s events at %s/s for about %s", num(in.scan.Events), num(int64(rate)), d.opts.duration)
	} else {
		d.logf("demo: live: streaming %s events as fast as possible", num(in.scan.Events))
	}
	start := time.Now()
	stats, err := d.send(ctx, "live", in.path, rate)
	d.progressDone()
	if err != nil {
		return err
	}
	r := &d.report
	r.Events, r.DurationSeconds, r.EventsPerSecond = stats.Events, stats.Elapsed.Seconds(), stats.Rate()
	d.logf("demo: live: %s", stats)

	// Drain: every event read by the detector, every score by the
	// publisher, and every detection published read back.
	var detDone time.Time
	var stable int
	var lastDets int64 = -1
	err = d.waitFor(ctx, "the pipeline to drain", func(ctx context.Context) (bool, string, error) {
		dm, err := det.Metrics(ctx)
		if err != nil {
			return false, "", err
		}
		pm, err := pub.Metrics(ctx)
		if err != nil {
			return false, "", err
		}
		events, _ := dm.Value(metricDetectorEvents)
		scored, _ := dm.Value(metricDetectorScored)
		read, _ := pm.Value(metricPublisherRead)
		published, _ := pm.Value(metricPublisherPublic)
		got := d.dets.total()
		status := fmt.Sprintf("detector %s of %s events, publisher %s of %s scores, %s of %s detections read back",
			num(int64(events-detBase)), num(stats.Events), num(int64(read)), num(int64(scored)), num(got), num(int64(published)))
		if int64(events-detBase) < stats.Events {
			return false, status, nil
		}
		if detDone.IsZero() {
			detDone = time.Now()
		}
		if read < scored || got < int64(published) {
			stable = 0
			return false, status, nil
		}
		// The publisher lingers up to a second before a batch: done when
		// nothing changes for a while.
		if got == lastDets {
			stable++
		} else {
			stable, lastDets = 0, got
		}
		return stable*int(pollEvery/time.Millisecond) >= 2500, status, nil
	})
	if err == nil {
		d.logf("demo: drained %.1fs after the live phase ended", time.Since(start.Add(stats.Elapsed)).Seconds())
	}
	if !detDone.IsZero() {
		r.DetectorEventsPerSecond = float64(stats.Events) / detDone.Sub(start).Seconds()
	}
	if m, merr := det.Metrics(ctx); merr == nil {
		scored, _ := m.Value(metricDetectorScored)
		r.Scores = int64(scored - scoredBase)
	}
	if err != nil {
		r.Warnings = append(r.Warnings, err.Error())
		d.finish(in)
		d.writeReport()
		return err
	}
	return nil
}

// finish computes the report's detection figures.
func (d *demo) finish(live input) {
	dets, bad := d.dets.live()
	if bad > 0 {
		d.report.Warnings = append(d.report.Warnings, fmt.Sprintf("%d detection records did not decode", bad))
	}
	d.report.Quality = evaluate.Evaluate(dets, live.scan.Labels)
	d.report.WallSeconds = time.Since(d.started).Seconds()
	if d.opts.keepLogs {
		d.report.LogDir = filepath.Join(d.dir, "logs")
	}
}

// writeReport prints the report and writes -report-json.
func (d *demo) writeReport() error {
	d.report.writeText(d.stdout)
	if d.opts.reportJSON == "" {
		return nil
	}
	js, err := json.MarshalIndent(&d.report, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if err := os.WriteFile(d.opts.reportJSON, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	d.logf("demo: report written to %s", d.opts.reportJSON)
	return nil
}

// send replays path into the requests topic at rate events/s (0: as fast
// as possible), showing progress every progressEvery.
func (d *demo) send(ctx context.Context, phase, path string, rate float64) (replay.Stats, error) {
	f, err := replay.Open(path, os.Stdin)
	if err != nil {
		return replay.Stats{}, fmt.Errorf("%s: %w", phase, err)
	}
	defer f.Close()
	var sent atomic.Int64
	cfg := d.replay
	cfg.Rate = rate
	cfg.Progress = time.Millisecond // every write: a tenth of a second's events at most
	cfg.OnProgress = func(s replay.Stats) { sent.Store(s.Events) }
	cfg.Warn = func(e *replay.LineError) {
		d.logf("demo: %s: %v (sent unkeyed; the pipeline dead-letters it)", phase, e)
	}
	w := replay.NewKafkaWriter(d.stack.Brokers(), pipeline.TopicRequests, cfg.Batch)
	defer w.Close()
	s, err := replay.NewSender(cfg, w)
	if err != nil {
		return replay.Stats{}, fmt.Errorf("%s: %w", phase, err)
	}

	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.progress(pctx, phase, &sent) })
	err = s.Send(ctx, path, f)
	stop()
	wg.Wait()
	if err != nil {
		return s.Stats(), fmt.Errorf("%s: sending %s: %w", phase, path, err)
	}
	if err := w.Close(); err != nil {
		return s.Stats(), fmt.Errorf("%s: %w", phase, err)
	}
	return s.Stats(), nil
}

// progress shows, on one line, the events sent and read by the detector,
// their rates, the lag between them, and the scores and detections.
func (d *demo) progress(ctx context.Context, phase string, sent *atomic.Int64) {
	det := d.stack.Service(pipeline.Detector)
	begin := time.Now()
	var prevSent, prevRead, readBase, scoredBase float64
	if m, err := det.Metrics(ctx); err == nil {
		readBase, _ = m.Value(metricDetectorEvents)
		scoredBase, _ = m.Value(metricDetectorScored)
		prevRead = readBase
	}
	prevAt := begin
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m, err := det.Metrics(ctx)
			if err != nil {
				continue
			}
			read, _ := m.Value(metricDetectorEvents)
			scored, _ := m.Value(metricDetectorScored)
			s := float64(sent.Load())
			secs := now.Sub(prevAt).Seconds()
			d.progressLine(fmt.Sprintf("%s %5.1fs  sent %s (%s/s)  detector %s (%s/s)  lag %s  scores %s  detections %s",
				phase, now.Sub(begin).Seconds(), num(int64(s)), num(int64((s-prevSent)/secs)),
				num(int64(read-readBase)), num(int64((read-prevRead)/secs)), num(max(0, int64(s-(read-readBase)))),
				num(int64(scored-scoredBase)), num(d.dets.total())))
			prevSent, prevRead, prevAt = s, read, now
		}
	}
}

// progressLine rewrites the progress line on a terminal, else prints it.
func (d *demo) progressLine(line string) {
	if isTerminal(d.stderr) {
		fmt.Fprintf(d.stderr, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(d.stderr, line)
}

// progressDone ends the progress line on a terminal.
func (d *demo) progressDone() {
	if isTerminal(d.stderr) {
		fmt.Fprint(d.stderr, "\n")
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (d *demo) logf(format string, args ...any) {
	fmt.Fprintf(d.stderr, format+"\n", args...)
}

// httpError is an answer other than 200.
type httpError struct {
	status int
	body   []byte
}

func (e *httpError) Error() string {
	return fmt.Sprintf("status %d: %s", e.status, strings.TrimSpace(string(e.body)))
}

// getJSON sends a request to svc and decodes a 200 answer into v.
func getJSON(ctx context.Context, svc *pipeline.Service, method, path string, v any) error {
	resp, err := svc.Do(ctx, method, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %w", method, path, &httpError{status: resp.StatusCode, body: body})
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// detectionReader reads the detections topic from its beginning, as the
// edge would, and keeps every record.
type detectionReader struct {
	r      *kafka.Reader
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	dets   []records.Detection
	bad    int
	loaded atomic.Int64
}

func startDetectionReader(ctx context.Context, brokers []string) (*detectionReader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: pipeline.TopicDetections, GroupID: "demo-report",
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(ctx)
	dr := &detectionReader{r: r, cancel: cancel}
	dr.wg.Go(func() {
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return // ctx is done or the reader closed
			}
			var det records.Detection
			dr.mu.Lock()
			switch err := json.Unmarshal(m.Value, &det); {
			case err != nil || det.Validate() != nil:
				dr.bad++
			case det.Revoked != "": // a detection lifted: the visitor was detected all the same
			default:
				dr.dets = append(dr.dets, det)
			}
			dr.mu.Unlock()
			dr.loaded.Add(1)
		}
	})
	return dr, nil
}

// total is the number of detection records read.
func (dr *detectionReader) total() int64 { return dr.loaded.Load() }

// live returns the detections, all of the live phase (the detector scores
// nothing before it, see startStack), and the number of records that did
// not decode.
func (dr *detectionReader) live() (live []records.Detection, bad int) {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	return slices.Clone(dr.dets), dr.bad
}

func (dr *detectionReader) close() {
	dr.cancel()
	dr.wg.Wait()
	dr.r.Close()
}

// waitFor polls done until it reports true, for at most -drain-timeout.
func (d *demo) waitFor(ctx context.Context, what string, done func(context.Context) (bool, string, error)) error {
	return pipeline.Poll(ctx, d.opts.drainTimeout, pollEvery, what, done)
}
