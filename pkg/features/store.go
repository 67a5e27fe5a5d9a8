package features

import (
	"context"
	"errors"
)

// Store keeps visitors' window buckets. Add folds requests in, Window reads
// a visitor's window back as an Aggregate, and Flush makes every Add durable:
// the detector commits Kafka offsets only after Flush succeeds, so a crash
// replays what was not flushed, and replayed sketch inserts change no distinct
// count.
//
// An observation older than the window of the newest bucket the store has
// seen (its watermark) is late: it is counted and dropped. The
// implementations are safe for concurrent use.
//
// Prefetch is an optimisation for callers that Add and read windows one
// request at a time, as the detector does so that a score reflects exactly
// the requests up to the one that triggered it: it loads, in one round trip,
// what those calls for obs will need, and adds nothing.
type Store interface {
	Prefetch(ctx context.Context, obs []Observation) error
	Add(ctx context.Context, obs []Observation) error
	Flush(ctx context.Context) error
	Window(ctx context.Context, site, visitor uint64, newest uint32) (Aggregate, error)
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

// watermark tracks the newest bucket a store has seen and the observations
// it dropped as late.
type watermark struct {
	w      Window
	newest uint32
	late   uint64
}

// advance moves the watermark to the newest bucket of obs.
func (wm *watermark) advance(obs []Observation) {
	for i := range obs {
		wm.newest = max(wm.newest, obs[i].Bucket)
	}
}

// isLate reports, and counts, an observation older than the window.
func (wm *watermark) isLate(o *Observation) bool {
	if wm.w.Late(o.Bucket, wm.newest) {
		wm.late++
		return true
	}
	return false
}
