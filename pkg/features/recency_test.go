package features

import (
	"testing"
	"time"
)

func TestRecencyBoundsRescoring(t *testing.T) {
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		interval time.Duration
		every    time.Duration
		span     time.Duration
		want     int
	}{
		// A request a second for 5 minutes, 30 s interval: due at 0, 30, ..., 270.
		{"busy visitor", 30 * time.Second, time.Second, 5 * time.Minute, 10},
		{"slower than the interval", 30 * time.Second, time.Minute, 5 * time.Minute, 5},
		{"register off", 0, time.Second, time.Minute, 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecency(tc.interval, 0)
			due := 0
			for ts := start; ts.Before(start.Add(tc.span)); ts = ts.Add(tc.every) {
				if r.Due(1, 2, ts) {
					due++
				}
			}
			if due != tc.want {
				t.Errorf("due %d times, want %d", due, tc.want)
			}
		})
	}
}

func TestRecencyPairsAndOrder(t *testing.T) {
	r := NewRecency(30*time.Second, 0)
	t0 := time.Unix(1_000_000, 0)
	if !r.Due(1, 1, t0) || !r.Due(1, 2, t0) || !r.Due(2, 1, t0) {
		t.Fatal("first request of each pair is not due")
	}
	if r.Due(1, 1, t0.Add(29*time.Second)) {
		t.Error("due again before the interval")
	}
	if r.Due(1, 1, t0.Add(-time.Hour)) {
		t.Error("an older, replayed request is due")
	}
	if !r.Due(1, 1, t0.Add(30*time.Second)) {
		t.Error("not due after the interval")
	}
	r.Forget(1, 1)
	if !r.Due(1, 1, t0.Add(31*time.Second)) {
		t.Error("not due right after Forget")
	}
}

func TestRecencyMemoryIsBounded(t *testing.T) {
	r := NewRecency(30*time.Second, 0)
	t0 := time.Unix(1_000_000, 0)
	// 100k visitors, each seen once, one every 10 ms: 1000 s of event time,
	// so only the last 30 s (3000 visitors) need remembering.
	for i := range uint64(100_000) {
		r.Due(1, i, t0.Add(time.Duration(i)*10*time.Millisecond))
	}
	if r.Len() > 2*3000+1024 {
		t.Errorf("register holds %d pairs, want about 3000", r.Len())
	}
}

// TestRecencyBound: a flood of new visitors within the interval keeps the
// register within its bound, forgetting pairs, which are then due again
// at their next request.
func TestRecencyBound(t *testing.T) {
	const bound = 1000
	r := NewRecency(30*time.Second, bound)
	t0 := time.Unix(1_000_000, 0)
	most := 0
	for i := range uint64(100_000) {
		if !r.Due(1, i, t0.Add(time.Duration(i)*10*time.Microsecond)) {
			t.Fatalf("visitor %d's first request not due", i)
		}
		most = max(most, r.Len())
	}
	if most > bound {
		t.Errorf("the register held %d pairs, want at most %d", most, bound)
	}
	if r.Evictions() < 100_000-bound {
		t.Errorf("%d evictions, want at least %d", r.Evictions(), 100_000-bound)
	}
	due := 0
	for i := range uint64(100_000) {
		if r.Due(1, i, t0.Add(2*time.Second)) {
			due++
		}
	}
	if due < 100_000-bound {
		t.Errorf("%d visitors due again within the interval, want the %d forgotten at least", due, 100_000-bound)
	}
}
