package e2e

import (
	"context"
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
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// The scale of the tests: small enough for a 2-core CI machine, big enough
// for every site to get a baseline and every bot scenario to show. The
// history and live traffic are those of bench/eval_test.go's offline
// harness, so that its figures and these compare: three sites, 300k human
// requests over three hours, then 40k over 20 minutes with 6 bots of each
// scenario on top.
var (
	historyTraffic = traffic.Config{
		Sites: 3, Visitors: 6000, Events: 300_000,
		Start: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), Duration: 3 * time.Hour,
		Seed: 7, Skew: 1.1, SkewOffset: 10,
	}
	liveTraffic = func() traffic.Config {
		c := historyTraffic
		c.Seed, c.Events, c.Start, c.Duration = 8, 40_000, historyTraffic.Start.Add(historyTraffic.Duration), 20*time.Minute
		c.Bots = map[traffic.Scenario]int{}
		for _, s := range traffic.Scenarios() {
			c.Bots[s] = 6
		}
		return c
	}()
)

// identitySecret keys the visitor ids of every stack, so that two stacks'
// detections compare.
const identitySecret = "e2e identity secret, 0123456789abcdef"

// serviceFlags are the flags the tests give the services on top of the
// shared ones; every other flag keeps its default.
//
//   - baseline -min-windows 100, as the offline harness has it, below
//     the default 300, so that small classes of the generated sites get
//     baselines of their own as they did before classes.
//   - detector -baseline-revalidate 2s: the tests last seconds, not the
//     minutes of the default period; with it, the detector asks the
//     baseline service again while TestBaselineServiceDown has it down.
//   - detector -stall-timeout 5s (stallTimeout): TestRedisRestart sees
//     /healthz fail while the detector holds a batch it cannot make
//     durable, and stay up once it has caught up, within seconds.
//   - every service -max-event-age: the traffic is dated from
//     historyTraffic.Start, months ago, and is replayed on purpose, as the
//     README tells operators to; the bound still refuses anything older,
//     which TestEventTime relies on.
var serviceFlags = map[pipeline.Name][]string{
	pipeline.Baseline:  {"-min-windows", "100", "-max-event-age", maxEventAge.String()},
	pipeline.Detector:  {"-baseline-revalidate", "2s", "-stall-timeout", stallTimeout.String(), "-max-event-age", maxEventAge.String()},
	pipeline.Publisher: {"-max-event-age", maxEventAge.String()},
}

// stallTimeout is the detector's -stall-timeout.
const stallTimeout = 5 * time.Second

// maxEventAge is the services' -max-event-age: from two days before the
// history to now, in whole hours.
var maxEventAge = (time.Since(historyTraffic.Start) + 48*time.Hour).Truncate(time.Hour)

// liveRate bounds the events per second sent where the detector reads
// them as they come. The Kafka broker is in-process (kfake), so under -race
// it is instrumented too and serves fetches some ten times slower; the
// detector asks for up to 16 MiB per fetch with a 100 ms MaxWait, which
// kafka-go also uses as the deadline of the answer, so once a backlog of a
// few MiB per partition builds up, every fetch times out and is sent
// again, and the detector stalls. Sending at a pace the detector keeps up
// with keeps each fetch small. The history is not paced: the detector
// does not read it, and the baseline service fetches 1 MiB at a time.
const liveRate = 5000

// Bounds of the waits.
const (
	setupTimeout = 5 * time.Minute // a whole quality run
	drainTimeout = 3 * time.Minute // the pipeline catching up with what was sent
	pollEvery    = 100 * time.Millisecond
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error

	sharedOnce sync.Once
	sharedRun  *run
	sharedErr  error

	trafficOnce           sync.Once
	histBatch, liveBatch  *batch
	trafficErr            error
	identity, identityErr = features.NewIdentity(features.IdentityIP, []byte(identitySecret))
	keptStack             []string // directories of failed stacks
)

// TestMain removes the binaries and closes the shared stack after the
// tests. A stack whose tests failed keeps its directory but ClickHouse's
// data, and its path is printed.
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedRun != nil {
		sharedRun.close(code == 0)
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	for _, dir := range keptStack {
		fmt.Fprintf(os.Stderr, "e2e: kept the logs of a failed stack: %s (services in logs/, ClickHouse in clickhouse/log, Redis in redis/)\n", dir)
	}
	os.Exit(code)
}

// binaries builds the services once per test binary and returns their
// directory.
func binaries(tb testing.TB) string {
	tb.Helper()
	if took := build(); took > 0 {
		tb.Logf("built the services in %.1fs", took.Seconds())
	}
	if buildErr != nil {
		tb.Fatalf("building the services: %v", buildErr)
	}
	return binDir
}

// build builds the services into binDir the first time, and returns how
// long that took; later calls return 0 at once, or once the first ends.
func build() (took time.Duration) {
	buildOnce.Do(func() {
		start := time.Now()
		defer func() { took = time.Since(start) }()
		if binDir, buildErr = os.MkdirTemp("", "anomalyd-e2e-bin-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buildErr = pipeline.Build(ctx, binDir)
	})
	return took
}

// qualityTraffic generates the history and live batches once: both runs of
// TestReplayDeterministic send the same bytes.
func qualityTraffic(tb testing.TB) (hist, live *batch) {
	tb.Helper()
	trafficOnce.Do(func() {
		start := time.Now()
		if identityErr != nil {
			trafficErr = identityErr
			return
		}
		if histBatch, trafficErr = generate("history", historyTraffic, identity, false, nil); trafficErr != nil {
			return
		}
		if liveBatch, trafficErr = generate("live traffic", liveTraffic, identity, true, nil); trafficErr != nil {
			return
		}
		tb.Logf("generated %d history and %d live requests (%v) in %.1fs",
			histBatch.events, liveBatch.events, liveBatch.labels(), time.Since(start).Seconds())
	})
	if trafficErr != nil {
		tb.Fatalf("generating traffic: %v", trafficErr)
	}
	return histBatch, liveBatch
}

// run is a stack that has been through a quality run: history, baselines,
// live traffic, drained. Tests that share it send their traffic at later
// event times (reserve), so that it neither falls out of the detector's
// windows nor shares windows with earlier traffic.
type run struct {
	st        *pipeline.Stack
	kc        *kafkaClient
	policyDir string // the services' policy (writePolicy)

	sites      []siteStatus
	hist, live *batch
	detections []records.Detection // published during the live traffic
	scores     []records.Score     // scored during the live traffic
	lateEvents float64             // anomalyd_detector_late_events_total after the live traffic
	timings    []string

	mu     sync.Mutex
	cursor time.Time // event time free for the next test
}

// siteStatus is what the tests read of the baseline API's site status.
type siteStatus struct {
	Site    string `json:"site"`
	Status  string `json:"status"`
	Version string `json:"version"`
	Windows int    `json:"windows"`
	Error   string `json:"error"`
}

// shared returns the stack the tests share, running its quality run the
// first time.
func shared(t *testing.T) *run {
	t.Helper()
	sharedOnce.Do(func() {
		// The build and the traffic generation are independent.
		built := make(chan time.Duration, 1)
		go func() { built <- build() }()
		hist, live := qualityTraffic(t)
		if took := <-built; took > 0 {
			t.Logf("built the services in %.1fs", took.Seconds())
		}
		sharedRun, sharedErr = qualityRun(t, binaries(t), hist, live)
	})
	if sharedErr != nil {
		t.Fatalf("the shared stack's quality run failed: %v", sharedErr)
	}
	return sharedRun
}

// startStack starts a stack with the tests' flags and topics of partitions
// partitions (0: the default), every service reading
// the policy file of policyDir (see policyFiles), empty at first. Its
// directory is kept until close says the tests passed. The stack outlives
// ctx, which only bounds the start: a stack closes when its context ends.
func startStack(ctx context.Context, bin, policyDir string, partitions int) (*pipeline.Stack, error) {
	if err := writePolicy(policyDir, "# e2e: no policy yet\n"); err != nil {
		return nil, err
	}
	flags := make(map[pipeline.Name][]string)
	for n, f := range serviceFlags {
		flags[n] = append(slices.Clone(f), "-policy", filepath.Join(policyDir, policyFile))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return pipeline.Start(context.WithoutCancel(ctx), pipeline.Config{
		BinDir: bin, KafkaAddr: "127.0.0.1:0", KeepDir: true, Partitions: int32(partitions),
		IdentitySecret: identitySecret, Flags: flags,
	})
}

// policyFile is the policy's name in its directory, laid out as Kubernetes
// mounts a ConfigMap: policy.yaml links to ..data/policy.yaml, and ..data
// to a directory of the current version, which an update replaces by
// swapping the ..data link.
const policyFile = "policy.yaml"

// writePolicy writes text as the policy of dir, as the kubelet updates a
// ConfigMap: a new version's directory, then an atomic swap of ..data.
func writePolicy(dir, text string) error {
	version, err := os.MkdirTemp(dir, "..v")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(version, policyFile), []byte(text), 0o644); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	link := filepath.Join(dir, policyFile)
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		return os.Symlink(filepath.Join("..data", policyFile), link)
	}
	return nil
}

// close closes the stack, and removes its directory if ok.
func (r *run) close(ok bool) {
	if r.kc != nil {
		r.kc.close()
	}
	err := r.st.Close()
	os.RemoveAll(r.policyDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		ok = false
	}
	if ok {
		os.RemoveAll(r.st.Dir())
	} else {
		// The logs tell what went wrong; ClickHouse's data does not.
		os.RemoveAll(filepath.Join(r.st.Dir(), "clickhouse", "data"))
		keptStack = append(keptStack, r.st.Dir())
	}
}

// qualityRun starts a stack and runs the quality scenario on it:
//
//  1. The detector stops, so that it does not score the history: the
//     baselines do not exist yet, and what it fetched meanwhile would
//     depend on timing.
//  2. The history goes to the requests topic, and the test waits until
//     the baseline service has committed all of it (inserted into
//     ClickHouse).
//  3. Every site's baseline is rebuilt (POST /v1/sites/{site}/rebuild);
//     each must succeed.
//  4. The detector's consumer group is committed at the end of the
//     history, as an operator skips a replayed backlog, and the detector
//     starts again.
//  5. The live traffic goes through at liveRate events a second, and the
//     test waits until the pipeline has drained: the detector and the
//     publisher have committed everything, and the detector counted every
//     live event.
//  6. The scores and detections topics are read back.
//
// On error the stack is closed (its directory kept).
func qualityRun(tb testing.TB, bin string, hist, live *batch) (r *run, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	begin := time.Now()
	phase := begin
	r = &run{hist: hist, live: live, cursor: live.last.Add(15 * time.Minute).Truncate(time.Minute)}
	lap := func(what string) {
		r.timings = append(r.timings, fmt.Sprintf("%s %.1fs", what, time.Since(phase).Seconds()))
		phase = time.Now()
	}
	if r.policyDir, err = os.MkdirTemp("", "anomalyd-e2e-policy-"); err != nil {
		return nil, err
	}
	if r.st, err = startStack(ctx, bin, r.policyDir, 0); err != nil {
		os.RemoveAll(r.policyDir)
		return nil, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (stack directory %s)", err, r.st.Dir())
			r.close(false)
			r = nil
		}
	}()
	r.kc = newKafkaClient(r.st.Brokers())
	det := r.st.Service(pipeline.Detector)
	if err := det.Stop(ctx); err != nil {
		return r, err
	}
	lap("stack")

	if _, err := send(ctx, r.st.Brokers(), hist, 0); err != nil {
		return r, err
	}
	lap("history sent")
	err = poll(ctx, drainTimeout, "the baseline service to ingest the history", func(ctx context.Context) (bool, string, error) {
		n, status, err := r.kc.behind(ctx, "baseline", pipeline.TopicRequests)
		return n == 0, status, err
	})
	if err != nil {
		return r, err
	}
	lap("history ingested")
	if r.sites, err = rebuildAll(ctx, r.st); err != nil {
		return r, err
	}
	lap("baselines rebuilt")

	ends, err := r.kc.ends(ctx, pipeline.TopicRequests)
	if err != nil {
		return r, err
	}
	if err := r.kc.commit(ctx, "detector", pipeline.TopicRequests, ends); err != nil {
		return r, err
	}
	if err := det.Start(ctx); err != nil {
		return r, err
	}
	lap("detector restarted")

	sent, err := send(ctx, r.st.Brokers(), live, liveRate)
	if err != nil {
		return r, err
	}
	lap("live sent")
	if err := drain(ctx, r.st, r.kc); err != nil {
		return r, err
	}
	m, err := det.Metrics(ctx)
	if err != nil {
		return r, err
	}
	if events, _ := m.Value("anomalyd_detector_events_total"); int64(events) != sent.Events {
		return r, fmt.Errorf("the detector counted %v events of the %d live ones sent (anomalyd_detector_events_total)", events, sent.Events)
	}
	r.lateEvents, _ = m.Value("anomalyd_detector_late_events_total")
	lap("drained")

	if r.scores, err = readScores(ctx, r.kc, nil); err != nil {
		return r, err
	}
	if r.detections, err = readDetections(ctx, r.kc, nil); err != nil {
		return r, err
	}
	lap("read back")
	tb.Logf("quality run on %s: %s; total %.1fs", r.st.Dir(), strings.Join(r.timings, ", "), time.Since(begin).Seconds())
	return r, nil
}

// reserve returns the start of span event time that no other test uses,
// at least 15 minutes (a window and then some) after any earlier traffic.
func (r *run) reserve(span time.Duration) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.cursor
	r.cursor = start.Add(span + 15*time.Minute).Truncate(time.Minute)
	return start
}

// rebuildAll rebuilds the baseline of every site the baseline service
// knows, and fails naming each site that did not get one.
func rebuildAll(ctx context.Context, st *pipeline.Stack) ([]siteStatus, error) {
	bl := st.Service(pipeline.Baseline)
	var sites []siteStatus
	if code, err := callJSON(ctx, bl, http.MethodGet, "/v1/sites", &sites); err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/sites: %d %v", code, err)
	}
	if len(sites) == 0 {
		return nil, errors.New("GET /v1/sites lists no site after the history was ingested")
	}
	var built []siteStatus
	var errs []error
	// Every site, then the pool of every site, which is not a site.
	sites = slices.DeleteFunc(sites, func(s siteStatus) bool { return s.Site == pooledSite })
	for _, s := range append(sites, siteStatus{Site: pooledSite}) {
		var ok siteStatus
		var failed struct {
			Error  string      `json:"error"`
			Status *siteStatus `json:"status"`
		}
		code, body, err := call(ctx, bl, http.MethodPost, "/v1/sites/"+s.Site+"/rebuild")
		switch {
		case err != nil:
			errs = append(errs, err)
		case code == http.StatusOK && json.Unmarshal(body, &ok) == nil:
			built = append(built, ok)
		case json.Unmarshal(body, &failed) == nil && failed.Status != nil:
			errs = append(errs, fmt.Errorf("POST /v1/sites/%s/rebuild: %d: %s (status %s, %d visitor-windows); the baseline's flags are %q",
				s.Site, code, failed.Error, failed.Status.Status, failed.Status.Windows, serviceFlags[pipeline.Baseline]))
		default:
			errs = append(errs, fmt.Errorf("POST /v1/sites/%s/rebuild: %d %q", s.Site, code, body))
		}
	}
	built = slices.DeleteFunc(built, func(s siteStatus) bool { return s.Site == pooledSite })
	return built, errors.Join(errs...)
}

// pooledSite names the baselines pooled over every site.
const pooledSite = "*"

// callJSON sends a request to svc's API and decodes its JSON answer into v,
// whatever the status, which it returns.
func callJSON(ctx context.Context, svc *pipeline.Service, method, path string, v any) (int, error) {
	code, body, err := call(ctx, svc, method, path)
	if err != nil {
		return code, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return code, fmt.Errorf("%s %s: %d %q: %w", method, path, code, body, err)
	}
	return code, nil
}

// call sends a request to svc's API and returns the status and body.
func call(ctx context.Context, svc *pipeline.Service, method, path string) (int, []byte, error) {
	resp, err := svc.Do(ctx, method, path, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp.StatusCode, body, nil
}

// drain waits until the detector has committed every request and then the
// publisher every score: by then every score record is written, every
// detection published (the publisher publishes before it commits) and
// every score inserted into ClickHouse.
func drain(ctx context.Context, st *pipeline.Stack, kc *kafkaClient) error {
	return poll(ctx, drainTimeout, "the pipeline to drain", func(ctx context.Context) (bool, string, error) {
		n, status, err := kc.behind(ctx, "detector", pipeline.TopicRequests)
		if err != nil || n > 0 {
			return false, status, err
		}
		n, status, err = kc.behind(ctx, "publisher", pipeline.TopicScores)
		return n == 0, status, err
	})
}

// readScores reads the scores topic from the offsets in from.
func readScores(ctx context.Context, kc *kafkaClient, from map[int]int64) ([]records.Score, error) {
	msgs, _, err := kc.read(ctx, pipeline.TopicScores, from)
	if err != nil {
		return nil, err
	}
	out := make([]records.Score, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("score record at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
	}
	return out, nil
}

// readDetections reads the detections of the detections topic from the
// offsets in from, its revocations left out.
func readDetections(ctx context.Context, kc *kafkaClient, from map[int]int64) ([]records.Detection, error) {
	all, err := readDetectionRecords(ctx, kc, from)
	return slices.DeleteFunc(all, func(d records.Detection) bool { return d.Revoked != "" }), err
}

// readDetectionRecords reads the detections topic from the offsets in
// from: detections and revocations.
func readDetectionRecords(ctx context.Context, kc *kafkaClient, from map[int]int64) ([]records.Detection, error) {
	msgs, _, err := kc.read(ctx, pipeline.TopicDetections, from)
	if err != nil {
		return nil, err
	}
	out := make([]records.Detection, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("detection record at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		if want := out[i].Site + "|" + out[i].Visitor; string(m.Key) != want {
			return nil, fmt.Errorf("detection record at %s/%d/%d: key %q, want %q", m.Topic, m.Partition, m.Offset, m.Key, want)
		}
	}
	return out, nil
}

// metric reads one value of a service's /metrics, 0 when the series does
// not exist yet (a labelled counter that has counted nothing): for values
// before something happens.
func metric(ctx context.Context, tb testing.TB, st *pipeline.Stack, n pipeline.Name, name string) float64 {
	tb.Helper()
	v, err := st.Service(n).MetricsValue(ctx, name)
	if errors.Is(err, pipeline.ErrNoMetric) {
		return 0
	}
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// metrics scrapes a service's /metrics.
func metrics(ctx context.Context, tb testing.TB, st *pipeline.Stack, n pipeline.Name) pipeline.Metrics {
	tb.Helper()
	m, err := st.Service(n).Metrics(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// value returns the series name of m, a scrape of service n, and fails the
// test if it is missing: for values after something happened, where a
// missing series would make a check pass by default.
func value(tb testing.TB, n pipeline.Name, m pipeline.Metrics, name string) float64 {
	tb.Helper()
	v, ok := m.Value(name)
	if !ok {
		tb.Fatalf("%s /metrics has no series %s", n, name)
	}
	return v
}

// poll is pipeline.Poll every pollEvery.
func poll(ctx context.Context, timeout time.Duration, what string, check func(context.Context) (done bool, status string, err error)) error {
	return pipeline.Poll(ctx, timeout, pollEvery, what, check)
}
