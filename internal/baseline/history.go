package baseline

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// WindowSource streams the visitor-windows of one site that a query
// selects, aggregated as chstore's SQL aggregates them, the starts of its
// visits, and a site's visitors: the requests table in ClickHouse for the
// service, a MemoryHistory for backtests.
type WindowSource interface {
	Windows(ctx context.Context, w features.Window, q chstore.WindowQuery, fn func(chstore.VisitorWindow) error) error
	VisitStarts(ctx context.Context, w features.Window, q chstore.WindowQuery, early int, fn func(VisitStart) error) error
	Visitors(ctx context.Context, site string, from, to time.Time, fn func(uint64) error) error
}

// ClickHouseWindows is a requests table as a WindowSource.
type ClickHouseWindows struct {
	Conn  driver.Conn
	Table string
}

// Windows runs chstore.Windows on the table.
func (c ClickHouseWindows) Windows(ctx context.Context, w features.Window, q chstore.WindowQuery, fn func(chstore.VisitorWindow) error) error {
	return chstore.Windows(ctx, c.Conn, c.Table, w, q, fn)
}

// Visitors runs chstore.Visitors on the table.
func (c ClickHouseWindows) Visitors(ctx context.Context, site string, from, to time.Time, fn func(uint64) error) error {
	return chstore.Visitors(ctx, c.Conn, c.Table, site, from, to, fn)
}

// MemoryHistory is request history in memory, a WindowSource that
// computes exactly what chstore's SQL computes from the requests table:
// the same filters, the same tumbling windows, exact distinct counts.
// replay backtest builds baselines on it without ClickHouse. It keeps
// every request, about 56 bytes each. It is not safe for concurrent use.
type MemoryHistory struct {
	sites map[string]*siteHistory
}

type siteHistory struct {
	rows   []historyRow
	newest uint32 // Unix seconds
}

// historyRow is a requests-table row as far as the features go.
type historyRow struct {
	visitor uint64
	hashes  [features.NumSketches]uint64
	second  uint32
	flags   uint8
}

// NewMemoryHistory returns an empty history.
func NewMemoryHistory() *MemoryHistory {
	return &MemoryHistory{sites: make(map[string]*siteHistory)}
}

// Add records one request of site, as baseline ingest stores it.
func (h *MemoryHistory) Add(site string, o *features.Observation) {
	s := h.sites[site]
	if s == nil {
		s = &siteHistory{}
		h.sites[site] = s
	}
	s.rows = append(s.rows, historyRow{visitor: o.Visitor, hashes: o.Hashes, second: o.Second, flags: o.Flags})
	s.newest = max(s.newest, o.Second)
}

// Sites lists the sites of the history by name, as chstore.Sites does.
func (h *MemoryHistory) Sites() []chstore.SiteStats {
	var out []chstore.SiteStats
	for site, s := range h.sites {
		out = append(out, chstore.SiteStats{Site: site, Requests: uint64(len(s.rows)), Newest: time.Unix(int64(s.newest), 0).UTC()})
	}
	slices.SortFunc(out, func(a, b chstore.SiteStats) int { return cmp.Compare(a.Site, b.Site) })
	return out
}

// Visitors streams the distinct visitors of site with requests in
// [from, to), as chstore.Visitors does.
func (h *MemoryHistory) Visitors(ctx context.Context, site string, from, to time.Time, fn func(uint64) error) error {
	s := h.sites[site]
	if s == nil {
		return nil
	}
	seen := make(map[uint64]bool)
	for i := range s.rows {
		r := &s.rows[i]
		if int64(r.second) < from.Unix() || int64(r.second) >= to.Unix() || seen[r.visitor] {
			continue
		}
		seen[r.visitor] = true
		if err := fn(r.visitor); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// windowAcc accumulates one visitor-window exactly.
type windowAcc struct {
	site    string
	visitor uint64
	window  uint32
	counts  [features.NumCounters]uint64
	seconds map[uint32]struct{}
	sets    [features.NumSketches]map[uint64]struct{}
}

// add folds one request in, as the SQL counts it.
func (a *windowAcc) add(second uint32, flags uint8, hashes *[features.NumSketches]uint64) {
	a.seconds[second] = struct{}{}
	for c := range features.Counter(features.NumCounters) {
		d := c.Def()
		switch d.Kind {
		case features.EveryRequest:
			a.counts[c]++
		case features.FlaggedRequests:
			if flags&d.Flag != 0 {
				a.counts[c]++
			}
		}
	}
	for j, hash := range hashes {
		if hash == 0 {
			continue
		}
		if a.sets[j] == nil {
			a.sets[j] = make(map[uint64]struct{})
		}
		a.sets[j][hash] = struct{}{}
	}
}

// aggregate is the window's features.Aggregate, as the SQL has it.
func (a *windowAcc) aggregate() features.Aggregate {
	var agg features.Aggregate
	requests := a.counts[features.CountRequests]
	for c := range features.Counter(features.NumCounters) {
		agg.Counts[c] = a.counts[c]
		if c.Def().Kind == features.RepeatedSeconds {
			agg.Counts[c] = requests - uint64(len(a.seconds))
		}
	}
	for j, set := range a.sets {
		agg.Distinct[j] = uint64(len(set))
	}
	return agg
}

// Windows streams the visitor-windows q selects, in (visitor, window,
// site) order, as chstore.Windows does.
func (h *MemoryHistory) Windows(ctx context.Context, w features.Window, q chstore.WindowQuery, fn func(chstore.VisitorWindow) error) error {
	type key struct {
		site    string
		visitor uint64
		window  uint32
	}
	from, to := q.From.Unix(), q.To.Unix()
	width, buckets := uint32(w.Width/time.Second), uint32(w.Buckets)
	accs := make(map[key]*windowAcc)
	for site, s := range h.sites {
		if q.Site != "" && site != q.Site {
			continue
		}
		for i := range s.rows {
			r := &s.rows[i]
			if int64(r.second) < from || int64(r.second) >= to || float64(r.visitor%1_000_000) >= q.Sample*1e6 {
				continue
			}
			k := key{site, r.visitor, r.second / width / buckets}
			a := accs[k]
			if a == nil {
				a = &windowAcc{site: site, visitor: k.visitor, window: k.window, seconds: make(map[uint32]struct{})}
				accs[k] = a
			}
			a.add(r.second, r.flags, &r.hashes)
		}
	}
	windows := make([]*windowAcc, 0, len(accs))
	for _, a := range accs {
		windows = append(windows, a)
	}
	slices.SortFunc(windows, func(a, b *windowAcc) int {
		return cmp.Or(cmp.Compare(a.visitor, b.visitor), cmp.Compare(a.window, b.window), cmp.Compare(a.site, b.site))
	})
	sent := 0
	for _, a := range windows {
		if err := ctx.Err(); err != nil {
			return err
		}
		vw := chstore.VisitorWindow{Site: a.site, Visitor: a.visitor, Window: a.window, Agg: a.aggregate()}
		if vw.Agg.Counts[features.CountRequests] < uint64(q.MinRequests) {
			continue
		}
		if q.Limit > 0 && sent == q.Limit {
			break
		}
		if err := fn(vw); err != nil {
			return err
		}
		sent++
	}
	return nil
}
