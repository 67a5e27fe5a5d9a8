package publisher

import (
	"math/rand/v2"
	"testing"
)

// TestSiteScoredCounts: the visitors scored after a cut, counted from the
// front of the order, are those a scan of every visitor finds, through
// re-scores and cuts that move on; and the order stays within a few
// times the visitors however often they are scored again.
func TestSiteScoredCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := &siteScored{latest: make(map[uint64]int64)}
	want := make(map[uint64]int64) // every visitor's latest score
	const ttl = 1000
	for now := int64(1); now <= 200_000; now++ {
		v := uint64(rng.IntN(500))
		if at, ok := s.latest[v]; !ok || now > at {
			s.latest[v] = now
			s.push(v, now)
		}
		want[v] = now
		if now%97 != 0 {
			continue
		}
		cut := now - ttl
		s.expire(cut)
		n := 0
		for _, at := range want {
			if at > cut {
				n++
			}
		}
		if len(s.latest) != n {
			t.Fatalf("at %d: %d visitors scored since %d, a scan finds %d", now, len(s.latest), cut, n)
		}
		if len(s.order) > 5*len(s.latest)+200 {
			t.Fatalf("at %d: order of %d entries for %d visitors", now, len(s.order), len(s.latest))
		}
	}
}
