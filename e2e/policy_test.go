package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestPolicy drives the operators' controls through the real services,
// one policy file read by all three, updated as Kubernetes updates a
// ConfigMap (a symlink swap):
//
//   - a candidate model (shadows) is fitted by the baseline service and
//     scored by the detector: its records arrive under its name, next to
//     the live ones of the same windows, and are stored by model; its
//     scores above the threshold never reach the detections topic, and
//     anomalyctl shadow compares it with the live model;
//   - anomalyctl explain agrees with the score record of the same window;
//   - the site's page renders in Chromium, with the live detections;
//   - a site switched off stops being scored within a second of SIGHUP;
//   - a simulated site's scores are stored and nothing is published, and
//     its live detection is revoked;
//   - an allow-listed range is never scored, and the live detection of a
//     visitor in it is revoked, on a change the services find themselves;
//   - an invalid file is refused by every service, which keep the last
//     good policy.
func TestPolicy(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	st := r.st
	site := r.sites[0].Site
	t.Cleanup(func() {
		// The tests after this one get the stack as it was: no policy, and
		// baselines without the candidate.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		setPolicy(ctx, t, r, "# e2e: no policy\n", true)
		if _, err := rebuildAll(ctx, st); err != nil {
			t.Error(err)
		}
	})
	ctl := buildCtl(t)
	ends := func(topic string) map[int]int64 {
		t.Helper()
		o, err := r.kc.ends(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	drained := func() {
		t.Helper()
		if err := drain(ctx, st, r.kc); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := st.ClickHouse().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// A candidate of twenty bins; the baselines are rebuilt with it. The
	// detector serves a baseline older than -baseline-revalidate while it
	// fetches it again: a request of the site's class makes it fetch.
	const shadows = "shadows: [{name: bins-20, bins: 20}]\n"
	setPolicy(ctx, t, r, shadows, true)
	if _, err := rebuildAll(ctx, st); err != nil {
		t.Fatal(err)
	}
	start := r.reserve(3 * time.Minute)
	time.Sleep(2 * time.Second) // -baseline-revalidate
	const primeIP = "198.51.100.60"
	produce(ctx, t, r, pipeline.TopicRequests, []kafka.Message{{Key: []byte(site + "|" + primeIP), Value: requestAt(site, primeIP, fmt.Sprintf("%q", start.Format(time.RFC3339)), 0)}})
	drained()
	time.Sleep(time.Second) // the fetch
	start = start.Add(time.Minute)

	scoresFrom, detsFrom := ends(pipeline.TopicScores), ends(pipeline.TopicDetections)
	// A visitor scored at its fourth request and again 30 s later, its
	// last: its window in Redis is the one of its last score.
	const ip = "198.51.100.61"
	var reqs []kafka.Message
	for i, sec := range []int{0, 1, 2, 3, 33} {
		at := start.Add(time.Duration(sec) * time.Second)
		reqs = append(reqs, kafka.Message{Key: []byte(site + "|" + ip), Value: requestAt(site, ip, fmt.Sprintf("%q", at.Format(time.RFC3339)), i)})
	}
	scored := visitorOf(t, reqs[0].Value).visitor
	// Score records straight to the scores topic: three of a candidate far
	// above its threshold (a detection under -min-hits 3 if it were live),
	// and three of the live model for another visitor.
	const candidateOnly, liveOnly = 0xc0ffee01, 0xc0ffee02
	var direct []kafka.Message
	for k := range 3 {
		at := start.Add(40*time.Second + time.Duration(k)*10*time.Second)
		m := scoreRecord(t, site, candidateOnly, at)
		var s records.Score
		if err := json.Unmarshal(m.Value, &s); err != nil {
			t.Fatal(err)
		}
		s.Model = "bins-20"
		if m.Value, err = json.Marshal(&s); err != nil {
			t.Fatal(err)
		}
		direct = append(direct, m, scoreRecord(t, site, liveOnly, at))
	}
	produce(ctx, t, r, pipeline.TopicRequests, reqs)
	produce(ctx, t, r, pipeline.TopicScores, direct)
	drained()

	scores, err := readScores(ctx, r.kc, scoresFrom)
	if err != nil {
		t.Fatal(err)
	}
	var live, cand []records.Score
	for _, s := range scores {
		if s.Site != site || s.Visitor != records.VisitorID(scored) || s.Early {
			continue
		}
		if s.Model == "" {
			live = append(live, s)
		} else {
			cand = append(cand, s)
		}
	}
	if len(live) != 2 || len(cand) != 2 {
		t.Fatalf("the visitor's records: %d live, %d of candidates; want 2 of each", len(live), len(cand))
	}
	for i := range live {
		if cand[i].Model != "bins-20" || !cand[i].ScoredAt.Equal(live[i].ScoredAt) || !cand[i].WindowStart.Equal(live[i].WindowStart) || len(cand[i].Features) != len(live[i].Features) {
			t.Errorf("candidate's record %+v\nfor the live one %+v", cand[i], live[i])
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM scores FINAL WHERE site = ? AND visitor = ? AND model = 'bins-20'", site, scored).Scan(&n); err != nil || n != 2 {
		t.Errorf("the candidate's rows of the visitor: %d, %v; want 2", n, err)
	}
	dets, err := readDetections(ctx, r.kc, detsFrom)
	if err != nil {
		t.Fatal(err)
	}
	published := map[string]bool{}
	for _, d := range dets {
		published[d.Visitor] = true
	}
	if published[records.VisitorID(candidateOnly)] || !published[records.VisitorID(liveOnly)] {
		t.Errorf("published %v: want the live model's outlier and not the candidate's", published)
	}

	// anomalyctl explain reads the window from Redis and scores it as the
	// detector did.
	var ex struct {
		Class     string  `json:"class"`
		Requests  uint64  `json:"requests"`
		Score     float64 `json:"score"`
		Threshold float64 `json:"threshold"`
	}
	last := live[len(live)-1]
	runCtl(ctx, t, st, ctl, &ex, "explain", "-redis", st.Redis().Addr(), "-at", last.ScoredAt.Format(time.RFC3339), site, last.Visitor)
	if ex.Class != last.Class || ex.Requests != 5 || math.Abs(ex.Score-last.Score) > 1e-9 || ex.Threshold != last.Threshold {
		t.Errorf("anomalyctl explain: %+v; the score record: class %s, score %v, threshold %v", ex, last.Class, last.Score, last.Threshold)
	}
	// anomalyctl shadow: the candidate's outlier is the candidate's only,
	// the live one live's only.
	var cmp baseline.ShadowComparison
	runCtl(ctx, t, st, ctl, &cmp, "shadow", "-period", "1h", "-site", site)
	if len(cmp.Sites) != 1 || len(cmp.Sites[0].Models) != 1 || cmp.Sites[0].Models[0].Model != "bins-20" ||
		!slices.Contains(cmp.Sites[0].Models[0].CandidateOnlyExamples, records.VisitorID(candidateOnly)) ||
		!slices.Contains(cmp.Sites[0].Models[0].LiveOnlyExamples, records.VisitorID(liveOnly)) {
		t.Errorf("anomalyctl shadow: %+v", cmp)
	}

	// The site's page, as a browser renders it: a histogram per feature,
	// and the live model's detection among the recent ones, not the
	// candidate's.
	page := strings.Replace(st.Service(pipeline.Baseline).URL(), "http://", "http://anomalyd:"+st.Token()+"@", 1) + "/v1/sites/" + site + "/page"
	dom := testenv.ChromiumDOM(t, page)
	if n := strings.Count(dom, `<svg class="histogram"`); n < len(live[0].Features) {
		t.Errorf("the page rendered %d histograms, want at least one per feature (%d)", n, len(live[0].Features))
	}
	if !strings.Contains(dom, records.VisitorID(liveOnly)) || strings.Contains(dom, records.VisitorID(candidateOnly)) {
		t.Errorf("the page's recent detections: want %s and not the candidate's %s", records.VisitorID(liveOnly), records.VisitorID(candidateOnly))
	}

	// The site off: SIGHUP, and within a second the detector has the
	// policy and scores nothing of the site.
	took := setPolicy(ctx, t, r, "sites:\n  "+site+": {off: true}\n", true)
	t.Logf("the detector had the site off %v after SIGHUP", took)
	if took > time.Second {
		t.Errorf("the detector took %v to switch the site off after SIGHUP", took)
	}
	offBefore := metric(ctx, t, st, pipeline.Detector, `anomalyd_detector_unscored_total{reason="site_off"}`)
	start = r.reserve(time.Minute)
	scoresFrom = ends(pipeline.TopicScores)
	const offIP = "198.51.100.62"
	var offReqs []kafka.Message
	for i := range 8 {
		at := start.Add(time.Duration(i) * time.Second)
		offReqs = append(offReqs, kafka.Message{Key: []byte(site + "|" + offIP), Value: requestAt(site, offIP, fmt.Sprintf("%q", at.Format(time.RFC3339)), i)})
	}
	produce(ctx, t, r, pipeline.TopicRequests, offReqs)
	drained()
	if got := metric(ctx, t, st, pipeline.Detector, `anomalyd_detector_unscored_total{reason="site_off"}`) - offBefore; got != 8 {
		t.Errorf("%v requests of the site off counted, want 8", got)
	}
	if scores, err = readScores(ctx, r.kc, scoresFrom); err != nil || len(scores) != 0 {
		t.Errorf("%d records while the site was off (%v)", len(scores), err)
	}

	// Simulated: the scores are stored, nothing is published.
	setPolicy(ctx, t, r, "sites:\n  "+site+": {simulate: true}\n", true)
	start = r.reserve(time.Minute)
	detsFrom = ends(pipeline.TopicDetections)
	const simulated = 0xc0ffee03
	var sim []kafka.Message
	for k := range 3 {
		sim = append(sim, scoreRecord(t, site, simulated, start.Add(time.Duration(k)*10*time.Second)))
	}
	produce(ctx, t, r, pipeline.TopicScores, sim)
	drained()
	if err := conn.QueryRow(ctx, "SELECT count() FROM scores FINAL WHERE site = ? AND visitor = ?", site, uint64(simulated)).Scan(&n); err != nil || n != 3 {
		t.Errorf("the simulated site's scores stored: %d, %v; want 3", n, err)
	}
	// Nothing published; the live detection of before is revoked, at the
	// publisher's first batch under the new policy.
	if dets, err = readDetectionRecords(ctx, r.kc, detsFrom); err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 || dets[0].Visitor != records.VisitorID(liveOnly) || dets[0].Revoked != records.RevokedSimulate {
		t.Errorf("detection records while simulated: %+v; want only the revocation of %s", dets, records.VisitorID(liveOnly))
	}

	// A visitor detected, then its range allowed: the services find the
	// new file themselves (no signal), its requests are not scored, and
	// its detection is revoked.
	setPolicy(ctx, t, r, "# nothing\n", true)
	start = r.reserve(2 * time.Minute)
	const allowIP = "203.0.113.7"
	probe := requestAt(site, allowIP, fmt.Sprintf("%q", start.Format(time.RFC3339)), 0)
	allowed := visitorOf(t, probe).visitor
	detsFrom = ends(pipeline.TopicDetections)
	var det []kafka.Message
	for k := range 3 {
		det = append(det, scoreRecord(t, site, allowed, start.Add(time.Duration(k)*10*time.Second)))
	}
	produce(ctx, t, r, pipeline.TopicScores, det)
	drained()
	setPolicy(ctx, t, r, "sites:\n  "+site+":\n    allow:\n      - cidr: 203.0.113.0/24\n        comment: e2e\n", false)
	allowedBefore := metric(ctx, t, st, pipeline.Detector, `anomalyd_detector_unscored_total{reason="allowed"}`)
	scoresFrom = ends(pipeline.TopicScores)
	var allowReqs []kafka.Message
	for i := range 6 {
		at := start.Add(time.Minute + time.Duration(i)*time.Second)
		allowReqs = append(allowReqs, kafka.Message{Key: []byte(site + "|" + allowIP), Value: requestAt(site, allowIP, fmt.Sprintf("%q", at.Format(time.RFC3339)), i)})
	}
	produce(ctx, t, r, pipeline.TopicRequests, allowReqs)
	drained()
	if got := metric(ctx, t, st, pipeline.Detector, `anomalyd_detector_unscored_total{reason="allowed"}`) - allowedBefore; got != 6 {
		t.Errorf("%v allowed requests counted, want 6", got)
	}
	if scores, err = readScores(ctx, r.kc, scoresFrom); err != nil {
		t.Fatal(err)
	}
	for _, s := range scores {
		if !s.Allowed {
			t.Errorf("a record of the allowed range that is not an allowed record: %+v", s)
		}
	}
	if dets, err = readDetectionRecords(ctx, r.kc, detsFrom); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, d := range dets {
		if d.Visitor == records.VisitorID(allowed) {
			kinds = append(kinds, "published:"+d.Revoked)
		}
	}
	if want := []string{"published:", "published:" + records.RevokedAllowed}; !slices.Equal(kinds, want) {
		t.Errorf("the allowed visitor's detection records %q, want %q", kinds, want)
	}

	// An invalid file: every service refuses it and keeps the range
	// allowed.
	good := metrics(ctx, t, st, pipeline.Detector)
	var version string
	for name, v := range good {
		if strings.HasPrefix(name, "anomalyd_policy_info{") && v == 1 {
			version = name
		}
	}
	if version == "" {
		t.Fatal("the detector exports no policy version in force")
	}
	errs := map[pipeline.Name]float64{}
	for _, n := range pipeline.Names() {
		errs[n] = metric(ctx, t, st, n, `anomalyd_policy_reloads_total{result="error"}`)
	}
	if err := writePolicy(r.policyDir, "sites:\n  "+site+": {threshold: -1}\n"); err != nil {
		t.Fatal(err)
	}
	for _, n := range pipeline.Names() {
		if err := st.Service(n).Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		err := poll(ctx, 30*time.Second, string(n)+" to refuse the invalid policy", func(ctx context.Context) (bool, string, error) {
			v := metric(ctx, t, st, n, `anomalyd_policy_reloads_total{result="error"}`)
			return v > errs[n], fmt.Sprintf("%v errors", v), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if v := metric(ctx, t, st, n, version); v != 1 {
			t.Errorf("%s: %s = %v after the invalid file, want 1: the last good policy", n, version, v)
		}
	}
}

// setPolicy writes text as the services' policy and waits until all three
// have it in force (anomalyd_policy_info of its version); with hup it
// signals each, else they find the change themselves. It returns how long
// the detector took from its signal (or the write).
func setPolicy(ctx context.Context, t *testing.T, r *run, text string, hup bool) time.Duration {
	t.Helper()
	p, err := policy.Parse([]byte(text), "e2e policy")
	if err != nil {
		t.Fatal(err)
	}
	info := fmt.Sprintf("anomalyd_policy_info{version=%q}", p.Version())
	if err := writePolicy(r.policyDir, text); err != nil {
		t.Fatal(err)
	}
	var took time.Duration
	for _, n := range []pipeline.Name{pipeline.Detector, pipeline.Baseline, pipeline.Publisher} {
		sent := time.Now()
		if hup {
			if err := r.st.Service(n).Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		err := pipeline.Poll(ctx, 30*time.Second, 10*time.Millisecond, string(n)+" to read the policy", func(ctx context.Context) (bool, string, error) {
			v, err := r.st.Service(n).MetricsValue(ctx, info)
			return err == nil && v == 1, fmt.Sprintf("%s = %v (%v)", info, v, err), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == pipeline.Detector {
			took = time.Since(sent)
		}
	}
	return took
}

// buildCtl builds anomalyctl next to the services.
func buildCtl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binaries(t), "anomalyctl")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/anomalyd/anomalyd/cmd/anomalyctl").CombinedOutput()
	if err != nil {
		t.Fatalf("building anomalyctl: %v\n%s", err, out)
	}
	return bin
}

// runCtl runs anomalyctl VERB against the stack's baseline service, with
// -o json, and decodes its output into v.
func runCtl(ctx context.Context, t *testing.T, st *pipeline.Stack, bin string, v any, verb string, args ...string) {
	t.Helper()
	all := append([]string{verb, "-baseline-url", st.Service(pipeline.Baseline).URL(), "-token", st.Token(), "-o", "json"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("anomalyctl %s: %v\n%s", verb, err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("anomalyctl %s: %v\n%s", verb, err, out)
	}
}
