package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// scalePartitions is the requests topic's partitions in TestSeveralDetectors.
const scalePartitions = 6

// TestSeveralDetectors runs the quality scenario's traffic through a stack
// whose requests topic has six partitions, read by three detector
// processes in one consumer group; a third of the way through the live
// traffic one is killed (SIGKILL, as a crash), and two thirds of the way a
// fourth is added. Then:
//
//   - every event is accounted for: the group committed every offset, and
//     the detectors counted at least every event sent (a killed replica's
//     uncommitted batch is read again by another);
//   - every visitor is scored as often as by the single detector of the
//     shared run, and at most three times more: after each rebalance a
//     visitor of a moved partition may be scored once sooner than
//     -rescore-interval (the new owner has no recency register of it),
//     and the killed replica's last batch is scored again;
//   - the detections are the single detector's;
//   - each detector exports its partitions' lag.
func TestSeveralDetectors(t *testing.T) {
	r := shared(t) // the single detector's results on the same traffic
	hist, live := r.hist, r.live
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	policyDir := t.TempDir()
	st, err := startStack(ctx, binaries(t), policyDir, scalePartitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if !t.Failed() {
			os.RemoveAll(st.Dir())
		} else {
			os.RemoveAll(filepath.Join(st.Dir(), "clickhouse", "data"))
			t.Logf("kept the stack's logs: %s", st.LogDir())
		}
	})
	kc := newKafkaClient(st.Brokers())
	defer kc.close()
	first := st.Service(pipeline.Detector)
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := send(ctx, st.Brokers(), hist, 0); err != nil {
		t.Fatal(err)
	}
	err = poll(ctx, drainTimeout, "the baseline service to ingest the history", func(ctx context.Context) (bool, string, error) {
		n, status, err := kc.behind(ctx, "baseline", pipeline.TopicRequests)
		return n == 0, status, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rebuildAll(ctx, st); err != nil {
		t.Fatal(err)
	}
	ends, err := kc.ends(ctx, pipeline.TopicRequests)
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.commit(ctx, "detector", pipeline.TopicRequests, ends); err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	detectors := []*pipeline.Service{first}
	for range 2 {
		d, err := st.AddDetector(ctx)
		if err != nil {
			t.Fatal(err)
		}
		detectors = append(detectors, d)
	}

	// The traffic begins once the three have their partitions, so that
	// the rebalances during it are the kill's and the join's.
	if err := stableGroup(ctx, kc, 3); err != nil {
		t.Fatal(err)
	}
	parts := thirds(live)
	var sent int64
	events := func(d *pipeline.Service) float64 {
		t.Helper()
		v, err := d.MetricsValue(ctx, "anomalyd_detector_events_total")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var counted float64 // by detectors no longer running
	for i, part := range parts {
		switch i {
		case 1: // the second detector dies
			counted += events(detectors[1])
			if err := detectors[1].Kill(); err != nil {
				t.Fatal(err)
			}
		case 2: // and another joins
			d, err := st.AddDetector(ctx)
			if err != nil {
				t.Fatal(err)
			}
			detectors = append(detectors, d)
		}
		stats, err := send(ctx, st.Brokers(), part, liveRate)
		if err != nil {
			t.Fatal(err)
		}
		sent += stats.Events
	}
	if err := drain(ctx, st, kc); err != nil {
		t.Fatal(err)
	}
	for i, d := range detectors {
		if !d.Running() {
			continue
		}
		counted += events(d)
		m, err := d.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var lags []string
		for p := range scalePartitions {
			if v, ok := m.Value(fmt.Sprintf("anomalyd_detector_partition_lag{partition=%q}", strconv.Itoa(p))); ok {
				lags = append(lags, fmt.Sprintf("%d:%v", p, v))
			}
		}
		t.Logf("detector %d: partition lags %v", i+1, lags)
		if len(lags) == 0 {
			t.Errorf("detector %d exports no partition lag", i+1)
		}
	}
	if counted < float64(sent) {
		t.Errorf("the detectors counted %v events of the %d sent", counted, sent)
	}
	t.Logf("%d events sent, %v counted by the detectors", sent, counted)

	scores, err := readScores(ctx, kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	dets, err := readDetections(ctx, kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The scores, per visitor: as many scorings as the single detector
	// made, and a few more. A new owner of a partition has no recency
	// register of its visitors, so it scores each at its next request
	// rather than -rescore-interval after the last scoring: sooner, never
	// later, and the visitor's later scorings follow from there.
	count := func(ss []records.Score) map[vkey]int {
		out := make(map[vkey]int)
		for _, s := range ss {
			if s.Early || s.Model != "" || s.Allowed {
				continue
			}
			k, err := detectionKey(s.Site, s.Visitor)
			if err != nil {
				t.Fatal(err)
			}
			out[k]++
		}
		return out
	}
	single, several := count(r.scores), count(scores)
	var fewer, more, most int
	for v, n := range single {
		if d := several[v] - n; d < 0 {
			fewer++
		} else {
			more += d
			most = max(most, d)
		}
	}
	for v, n := range several {
		if single[v] == 0 {
			more += n
			most = max(most, n)
		}
	}
	t.Logf("scorings: %d visitors scored by one detector; by several, %d scorings more in all, at most %d more for a visitor", len(single), more, most)
	if fewer > 0 {
		t.Errorf("%d visitors were scored fewer times by several detectors than by one", fewer)
	}
	// Two rebalances moved partitions during the live traffic (the kill,
	// seen when the dead member's session ended, and the join), and the
	// dead replica's last batch was read again: at most three more each.
	if most > 3 {
		t.Errorf("a visitor was scored %d more times than by the single detector, want at most 3", most)
	}

	want, got := make(map[vkey]bool), make(map[vkey]bool)
	for _, d := range r.detections {
		k, _ := detectionKey(d.Site, d.Visitor)
		want[k] = true
	}
	for _, d := range dets {
		k, _ := detectionKey(d.Site, d.Visitor)
		got[k] = true
	}
	var only1, only3 []vkey
	for k := range want {
		if !got[k] {
			only1 = append(only1, k)
		}
	}
	for k := range got {
		if !want[k] {
			only3 = append(only3, k)
		}
	}
	t.Logf("detections: %d by one detector, %d by several; %d by one only, %d by several only", len(want), len(got), len(only1), len(only3))
	if len(only1) > 0 || len(only3) > 0 {
		t.Errorf("the detections differ: %v by the single detector only, %v by several only", only1, only3)
	}
}

// thirds splits a batch's lines into three batches of about as many
// events each.
func thirds(b *batch) []*batch {
	lines := bytes.SplitAfter(b.lines, []byte("\n"))
	var out []*batch
	for i := range 3 {
		part := &batch{name: fmt.Sprintf("%s, part %d of 3", b.name, i+1)}
		for _, l := range lines[i*len(lines)/3 : (i+1)*len(lines)/3] {
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			part.lines = append(part.lines, l...)
			part.events++
		}
		out = append(out, part)
	}
	return out
}

// stableGroup waits until the detectors' consumer group is stable with
// members members.
func stableGroup(ctx context.Context, kc *kafkaClient, members int) error {
	return poll(ctx, time.Minute, fmt.Sprintf("the detectors' group to be stable with %d members", members), func(ctx context.Context) (bool, string, error) {
		resp, err := kc.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{"detector"}})
		if err != nil {
			return false, "", err
		}
		if len(resp.Groups) != 1 {
			return false, fmt.Sprintf("%d groups", len(resp.Groups)), nil
		}
		g := resp.Groups[0]
		status := fmt.Sprintf("%s with %d members", g.GroupState, len(g.Members))
		return g.GroupState == "Stable" && len(g.Members) == members, status, nil
	})
}
