package featurestore

import (
	"context"
	"sync"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// MemoryStore is a Store in process memory, for unit tests and
// single-process use. Memory follows the visitors of the last two windows:
// buckets older than that, behind the newest bucket overall, are dropped,
// so a visitor read more than a window behind the others loses its oldest
// buckets.
type MemoryStore struct {
	mu      sync.Mutex
	wm      watermark
	buckets map[bucketID]*bucket
}

// NewMemoryStore returns an empty store for window w.
func NewMemoryStore(w features.Window) *MemoryStore {
	return &MemoryStore{wm: newWatermark(w), buckets: make(map[bucketID]*bucket)}
}

// Prefetch does nothing: everything is in memory.
func (s *MemoryStore) Prefetch(context.Context, []features.Observation) error { return nil }

// Add folds obs into their buckets. It never fails.
func (s *MemoryStore) Add(_ context.Context, obs []features.Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.wm.newest
	s.wm.advance(obs)
	if s.wm.newest != before {
		s.evict()
	}
	for i := range obs {
		o := &obs[i]
		if !s.wm.accept(o) {
			continue
		}
		id := bucketID{o.Site, o.Visitor, o.Bucket}
		b := s.buckets[id]
		if b == nil {
			b = &bucket{}
			s.buckets[id] = b
		}
		b.add(o)
	}
	return nil
}

// evict drops the buckets more than two windows behind the newest.
func (s *MemoryStore) evict() {
	oldest := s.wm.w.First(s.wm.w.First(s.wm.newest))
	for id := range s.buckets {
		if id.bucket < oldest {
			delete(s.buckets, id)
		}
	}
	s.wm.forget(oldest)
}

// Flush does nothing: memory is as durable as this store gets.
func (s *MemoryStore) Flush(context.Context) error { return nil }

// Window aggregates the visitor's buckets from First(newest) to newest.
func (s *MemoryStore) Window(_ context.Context, site, visitor uint64, newest uint32) (features.Aggregate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []*bucket
	for b := range s.wm.w.Range(newest) {
		if bk := s.buckets[bucketID{site, visitor, b}]; bk != nil {
			found = append(found, bk)
		}
	}
	return aggregate(found, nil)
}

// Late is the number of observations dropped as older than the window.
func (s *MemoryStore) Late() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wm.late
}
