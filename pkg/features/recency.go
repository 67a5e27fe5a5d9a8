package features

import "time"

// Recency is the recency register: it lets a (site, visitor) pair be
// re-scored at most once per interval of event time, so the read-merge-score
// path runs a bounded number of times per visitor however many requests it
// sends. In the reference system this gave 10x throughput.
//
// It lives in the detector's memory, not in Redis. The requests topic is
// partitioned by site|visitor, so one detector replica owns a visitor at a
// time and nobody else needs the register; keeping it local saves a Redis
// round trip per request. The cost is that after a restart or a partition
// rebalance a visitor may be scored once more than the interval allows,
// which is harmless. Memory is bounded: entries older than the interval
// (relative to the newest event seen) are pruned, because such pairs are due
// anyway; and when more pairs than a set bound were scored within the
// interval (a flood of new visitors), the register forgets half of them,
// which are then due at their next request: more scoring, nothing lost.
//
// A Recency is not safe for concurrent use: each detector worker has its own.
type Recency struct {
	interval  int64 // nanoseconds of event time
	last      map[[2]uint64]int64
	newest    int64 // newest event time seen, Unix nanoseconds
	pruneSize int   // len(last) that triggers the next prune
	max       int   // most pairs held; 0: no bound
	evictions uint64
}

// NewRecency returns a register with the given interval, holding at most
// max pairs (0: no bound); an interval of 0 makes every request due (the
// register is off).
func NewRecency(interval time.Duration, max int) *Recency {
	r := &Recency{interval: int64(interval), last: make(map[[2]uint64]int64), max: max}
	r.setPruneSize()
	return r
}

// setPruneSize waits for the register to double before the next prune, so
// that pruning costs O(1) amortized, or to pass its bound.
func (r *Recency) setPruneSize() {
	r.pruneSize = max(1024, 2*len(r.last))
	if r.max > 0 {
		r.pruneSize = min(r.pruneSize, r.max+1)
	}
}

// Due reports whether the pair should be scored for a request at event time
// t, and if so records t as its last scoring. A request older than the last
// scoring is never due.
func (r *Recency) Due(site, visitor uint64, t time.Time) bool {
	now := t.UnixNano()
	r.newest = max(r.newest, now)
	if r.interval <= 0 {
		return true
	}
	k := [2]uint64{site, visitor}
	if last, ok := r.last[k]; ok && now-last < r.interval {
		return false
	}
	r.last[k] = now
	if len(r.last) >= r.pruneSize {
		r.prune()
	}
	return true
}

// Forget makes the pair due at its next request, undoing the scoring Due
// just recorded: the detector calls it when a due visitor turns out to have
// too few requests to score, so it is scored as soon as it has enough.
func (r *Recency) Forget(site, visitor uint64) {
	delete(r.last, [2]uint64{site, visitor})
}

// prune forgets pairs whose last scoring is an interval or more behind the
// newest event: they are due again whenever they next appear.
func (r *Recency) prune() {
	for k, last := range r.last {
		if r.newest-last >= r.interval {
			delete(r.last, k)
		}
	}
	// Near the bound, forget down to half of it, so that the next prune
	// is at least a quarter of the bound away: O(1) amortized still.
	if r.max > 0 && len(r.last) > r.max*3/4 {
		n := len(r.last) - r.max/2
		for k := range r.last { // map order: which ones is left to chance
			if n == 0 {
				break
			}
			delete(r.last, k)
			n--
			r.evictions++
		}
	}
	r.setPruneSize()
}

// Evictions is how many pairs the register forgot to stay within its
// bound, each scored again sooner than the interval allows.
func (r *Recency) Evictions() uint64 { return r.evictions }

// Len is the number of pairs the register holds.
func (r *Recency) Len() int { return len(r.last) }
