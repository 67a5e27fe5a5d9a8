package featurestore

import (
	"context"
	"errors"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// Store keeps visitors' window buckets. Add folds requests in, Window reads
// a visitor's window back as an Aggregate, and Flush makes every Add durable:
// the detector commits Kafka offsets only after Flush succeeds, so a crash
// replays what was not flushed, and replayed sketch inserts change no distinct
// count.
//
// An observation older than the window of the newest bucket the store has
// seen of its visitor is late: it is counted and dropped. The
// implementations are safe for concurrent use.
//
// Prefetch is an optimisation for callers that Add and read windows one
// request at a time, as the detector does so that a score reflects exactly
// the requests up to the one that triggered it: it loads, in one round trip,
// what those calls for obs will need, and adds nothing.
type Store interface {
	Prefetch(ctx context.Context, obs []features.Observation) error
	Add(ctx context.Context, obs []features.Observation) error
	Flush(ctx context.Context) error
	Window(ctx context.Context, site, visitor uint64, newest uint32) (features.Aggregate, error)
}

// ErrUnavailable wraps every error of a store's backend (Redis down, slow
// past the context's deadline, or answering garbage), so callers can tell a
// dependency failure from bad input and retry.
var ErrUnavailable = errors.New("feature store unavailable")

// bucketID names one visitor's bucket.
type bucketID struct {
	site, visitor uint64
	bucket        uint32
}

// watermark tracks the newest bucket a store has seen, overall and per
// visitor, and the observations it dropped as late.
//
// Lateness is judged per visitor: a visitor's requests come in order from
// one partition, but the partitions a detector reads together can be far
// apart in event time, above all in a backlog read after an outage. Judged
// against the newest bucket overall, the requests of the partitions behind
// were dropped: two thirds of a two-hour backlog in BenchmarkDetector's
// setup. The overall newest bucket only decides what a store keeps in
// memory.
type watermark struct {
	w       features.Window
	newest  uint32 // overall
	late    uint64
	visitor map[visitorID]uint32
}

// visitorID names one visitor of one site.
type visitorID struct{ site, visitor uint64 }

func newWatermark(w features.Window) watermark {
	return watermark{w: w, visitor: make(map[visitorID]uint32)}
}

// advance moves the overall newest bucket to the newest of obs.
func (wm *watermark) advance(obs []features.Observation) {
	for i := range obs {
		wm.newest = max(wm.newest, obs[i].Bucket)
	}
}

// accept counts o as late and returns false, or records its bucket as its
// visitor's newest if it is, and returns true.
func (wm *watermark) accept(o *features.Observation) bool {
	v := visitorID{o.Site, o.Visitor}
	n, ok := wm.visitor[v]
	if ok && wm.w.Late(o.Bucket, n) {
		wm.late++
		return false
	}
	if !ok || o.Bucket > n {
		wm.visitor[v] = o.Bucket
	}
	return true
}

// forget drops the visitors whose newest bucket is older than oldest: their
// next request is not late, whatever its bucket.
func (wm *watermark) forget(oldest uint32) {
	for v, n := range wm.visitor {
		if n < oldest {
			delete(wm.visitor, v)
		}
	}
}
