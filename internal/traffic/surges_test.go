package traffic

import (
	"strings"
	"testing"
	"time"
)

// TestSurges checks a surge: people new to the site, each from an address
// of its own, landing at once on the same page from the same social
// network, within the surge's length; and the rest of the traffic as
// without it.
func TestSurges(t *testing.T) {
	t.Parallel()
	base := tinyConfig(3000, Options{})
	base.Duration = time.Hour
	with := base
	with.Options.Surges = Surges{Count: 1, People: 120, MinLength: 10 * time.Minute, MaxLength: 10 * time.Minute}
	var others []Request
	first := map[string]Request{} // each surge address's first request
	var from, to time.Time
	for _, r := range generate(t, with) {
		if r.Profile != ProfileSurge {
			others = append(others, r)
			continue
		}
		if r.Label != HumanLabel {
			t.Fatalf("a surge request labelled %q", r.Label)
		}
		if _, ok := first[r.ClientIP]; !ok {
			first[r.ClientIP] = r
			if from.IsZero() || r.Time.Before(from) {
				from = r.Time
			}
			if r.Time.After(to) {
				to = r.Time
			}
		}
	}
	if len(first) < 110 { // a few random addresses may collide
		t.Fatalf("%d surge addresses, want about 120", len(first))
	}
	if to.Sub(from) > 10*time.Minute {
		t.Errorf("arrivals over %v, want within the surge's 10m", to.Sub(from))
	}
	var landing, referer string
	for ip, r := range first {
		if landing == "" {
			landing, referer = r.Path, r.Referer
		}
		if r.Referer != referer || !strings.Contains(referer, ".") {
			t.Fatalf("%s came from %q, others from %q", ip, r.Referer, referer)
		}
		if r.Path != landing || r.Status != 200 {
			t.Fatalf("%s landed on %s (%d), others on %s", ip, r.Path, r.Status, landing)
		}
	}
	if want := generate(t, base); len(others) != len(want) {
		t.Errorf("%d other requests with a surge, %d without", len(others), len(want))
	}
}
