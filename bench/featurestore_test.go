package bench

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// TestFeatureDesignsAgree checks that the designs of BenchmarkFeatureStore
// compute the visitor features exactly as defined, so that the benchmark
// compares equal work: every window read is checked against exact counts
// over the same requests.
func TestFeatureDesignsAgree(t *testing.T) {
	cfg := traffic.DefaultConfig()
	cfg.Sites, cfg.Visitors, cfg.Events = 3, 200, 3000
	cfg.Duration = 15 * time.Minute // the 10-minute window slides
	cfg.Start = time.Now().UTC().Truncate(time.Minute)
	// Apps' and the pages' own API requests, so that every counter is
	// tested.
	cfg.Options = traffic.Options{People: traffic.Realistic().People, SiteKinds: true}
	events, err := traffic.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := features.DefaultWindow()

	tests := []struct {
		name   string
		design featureDesign
		// seen is the last request a read at request i includes: anomalyd
		// reads after adding the whole batch, the naive design per request.
		seen func(i int) int
	}{
		{"naive", featureDesign{name: "naive", run: runNaive}, func(i int) int { return i }},
		{"anomalyd", featureDesign{name: "anomalyd", run: runAnomalyd}, func(i int) int {
			return min((i/anomalydBatch+1)*anomalydBatch, len(events)) - 1
		}},
		{"pfcount", featureDesign{name: "pfcount", run: runPfcount}, func(i int) int {
			return min((i/anomalydBatch+1)*anomalydBatch, len(events)) - 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testenv.Redis(t)
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
			t.Cleanup(func() { rdb.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()

			bad := 0
			var counted [features.NumCounters]bool // some read's want has it
			onScore := func(i int, got features.Aggregate) {
				r := &events[i]
				want := exactWindow(events[:tt.seen(i)+1], w, r.Site, r.ClientIP, w.Bucket(r.Time))
				for c, n := range want.Counts {
					counted[c] = counted[c] || n > 0
				}
				if !closeAggregates(got, want) && bad < 5 {
					bad++
					t.Errorf("read at request %d (%s %s): got %+v, want %+v", i, r.Site, r.ClientIP, got, want)
				}
			}
			scores, err := tt.design.run(ctx, featurePartition{rdb: rdb, w: w, events: events, onScore: onScore})
			if err != nil {
				t.Fatal(err)
			}
			if scores == 0 || scores > len(events) {
				t.Errorf("%d window reads for %d requests", scores, len(events))
			}
			t.Logf("%d window reads for %d requests", scores, len(events))
			for c, ok := range counted {
				if !ok {
					t.Errorf("no read had a %s count: the traffic does not test that counter", features.Counter(c))
				}
			}
		})
	}
}

// exactWindow computes a visitor's aggregate over the window ending at
// bucket newest from the requests in events, with exact distinct counts.
func exactWindow(events []traffic.Request, w features.Window, site, ip string, newest uint32) features.Aggregate {
	var agg features.Aggregate
	classes := features.DefaultClassifier()
	var distinct [features.NumSketches]map[string]bool
	for i := range distinct {
		distinct[i] = make(map[string]bool)
	}
	last := make(map[uint32]int64) // bucket -> second of its latest request
	for i := range events {
		r := &events[i]
		b := w.Bucket(r.Time)
		if r.Site != site || r.ClientIP != ip || b < w.First(newest) || b > newest {
			continue
		}
		agg.Counts[features.CountRequests]++
		if r.Status >= 400 && r.Status <= 499 {
			agg.Counts[features.Count4xx]++
		}
		if r.Method != "GET" {
			agg.Counts[features.CountNonGET]++
		}
		if r.Referer == "" {
			agg.Counts[features.CountNoReferer]++
		}
		if features.IsAsset([]byte(r.Path)) {
			agg.Counts[features.CountAssets]++
		}
		ev := features.Event{Site: r.Site, Path: []byte(r.Path), UserAgent: []byte(r.UserAgent), Referer: []byte(r.Referer)}
		if classes.API(&ev) {
			agg.Counts[features.CountAPI]++
		}
		if sec, ok := last[b]; ok && sec == r.Time.Unix() {
			agg.Counts[features.CountSameSecond]++
		}
		last[b] = r.Time.Unix()
		shape := string(features.AppendQueryShape(nil, []byte("?"+r.Query)))
		for s, v := range map[features.Sketch]string{
			features.SketchPaths:       r.Path,
			features.SketchUserAgents:  r.UserAgent,
			features.SketchQueryShapes: shape,
		} {
			if v != "" {
				distinct[s][v] = true
			}
		}
	}
	for i, d := range distinct {
		agg.Distinct[i] = uint64(len(d))
	}
	return agg
}

// closeAggregates reports whether got matches the exact want: counters
// exactly, distinct counts within a HyperLogLog's error at these sizes.
func closeAggregates(got, want features.Aggregate) bool {
	if got.Counts != want.Counts {
		return false
	}
	for i := range got.Distinct {
		g, w := float64(got.Distinct[i]), float64(want.Distinct[i])
		if d := g - w; d > 1+0.03*w || -d > 1+0.03*w {
			return false
		}
	}
	return true
}
