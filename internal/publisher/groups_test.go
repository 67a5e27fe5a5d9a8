package publisher

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/anomalyd/anomalyd/pkg/records"
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
			s.order.push(scoredAt{v, now}, len(s.latest), s.isLatest)
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
		if len(s.order.order) > 5*len(s.latest)+200 {
			t.Fatalf("at %d: order of %d entries for %d visitors", now, len(s.order.order), len(s.latest))
		}
	}
}

// TestGroupMembersExpire: a group's members after a cut, forgotten from
// the front of its hits, are those a scan of every member's latest hit
// finds, and its counts of returning and rare members are theirs, through hits
// again (some turning returning or not, some late or at the same time)
// and cuts that move on; the order stays within a few times the members.
func TestGroupMembersExpire(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	gr := &group{members: make(map[uint64]*member)}
	type last struct {
		at              int64
		returning, rare bool
	}
	want := make(map[uint64]last)
	const ttl = 1000
	for now := int64(1); now <= 200_000; now++ {
		v := uint64(rng.IntN(500))
		returning, rare := rng.IntN(4) == 0, rng.IntN(3) == 0
		at := now
		_, known := gr.members[v]
		if known && rng.IntN(5) == 0 { // late, or again at the same time
			at = want[v].at - int64(rng.IntN(3))
		}
		l := last{at, returning, rare}
		if known {
			l.at = max(at, want[v].at)
		}
		m := gr.hit(v, member{at: at, returning: returning, rare: rare})
		if m != gr.members[v] || m.at != l.at {
			t.Fatalf("at %d: a hit at %d returned %+v, want its latest hit at %d", now, at, m, l.at)
		}
		want[v] = l
		if now%89 != 0 {
			continue
		}
		cut := now - ttl
		gr.expire(cut)
		var n, nReturning, nRare int
		for _, l := range want {
			if l.at > cut {
				n++
				if l.returning {
					nReturning++
				}
				if l.rare {
					nRare++
				}
			}
		}
		if len(gr.members) != n || gr.returning != nReturning || gr.rare != nRare {
			t.Fatalf("at %d: %d members (%d returning, %d rare) after %d, a scan finds %d (%d, %d)",
				now, len(gr.members), gr.returning, gr.rare, cut, n, nReturning, nRare)
		}
		if len(gr.hits.order) > 5*len(gr.members)+200 {
			t.Fatalf("at %d: %d hits kept for %d members", now, len(gr.hits.order), len(gr.members))
		}
	}
}

// BenchmarkGroupHit measures a member's hit in a group, by the size of
// the group: an attack spread over hundreds of addresses keeps a group of
// hundreds (kind=attack), and a signature that many of a big site's
// people share may too (kind=people: their top contributions are not
// rare, so it never becomes an attack).
func BenchmarkGroupHit(b *testing.B) {
	for _, kind := range []string{"attack", "people"} {
		for _, size := range []int{10, 1000} {
			b.Run(fmt.Sprintf("kind=%s/members=%d", kind, size), func(b *testing.B) {
				cfg := DefaultConfig().Select
				g := newGroups(cfg)
				sc := testScore("a.example", 0, 0, 15)
				top := cfg.GroupRarity + 1
				if kind == "people" {
					top = cfg.GroupRarity / 2
				}
				d := records.Detection{Top: []records.Contribution{{Contribution: top}}}
				hit := func(i int) *group {
					// size visitors in turn, each hit 1 ns after the
					// last, so that none expires and the group stays at
					// size.
					t := int64(cfg.TTL) + int64(i)
					g.seen(sc.Site, uint64(i%size), t)
					gr, _ := g.hit(sc, uint64(i%size), t, d)
					return gr
				}
				for i := range size {
					hit(i)
				}
				if gr := hit(size); gr.active != (kind == "attack") || len(gr.members) != size {
					b.Fatalf("the group has %d members, active %v", len(gr.members), gr.active)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					hit(i)
					i++
				}
			})
		}
	}
}
