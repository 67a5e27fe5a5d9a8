package chstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// VisitorWindow is one visitor's behaviour over one window of the history,
// aggregated as pkg/features aggregates a live window.
type VisitorWindow struct {
	Site    string
	Visitor uint64
	Window  uint32 // the window's index: its first bucket / Window.Buckets
	Agg     features.Aggregate
}

// windowsSQL aggregates history into per-(site, visitor, window) rows
// with exactly the definitions of pkg/features' schema: one column per
// counter, then one per sketch (aggregates). Windows tumble: window w holds
// the buckets w*B .. w*B+B-1, the same set a live window ending at its
// last bucket covers. The placeholders are the table, the bucket width in
// seconds, the buckets per window, the aggregates and the site condition.
// Rows come in visitor order: visitor ids are keyed hashes, so a LIMIT
// keeps a uniform sample of visitors, of every site alike.
const windowsSQL = `SELECT
	site,
	visitor,
	toUInt32(intDiv(intDiv(toUInt32(time), %[2]d), %[3]d)) AS window,
	%[4]s
FROM %[1]s FINAL
WHERE %[5]s time >= ? AND time < ? AND visitor %% 1000000 < ?
GROUP BY site, visitor, window
HAVING requests >= ?
ORDER BY visitor, window, site
LIMIT ?`

// aggregates returns the SQL of every counter and sketch of pkg/features,
// in enum order, each named as its definition: what the live buckets
// count. Counters count rows (time is in seconds, so a repeated second is
// a row whose second the visitor already had), and sketches the exact
// distinct non-zero hashes that the live sketches estimate.
func aggregates() string {
	var cols []string
	for c := range features.Counter(features.NumCounters) {
		d := c.Def()
		var expr string
		switch d.Kind {
		case features.EveryRequest:
			expr = "count()"
		case features.FlaggedRequests:
			expr = fmt.Sprintf("countIf(bitAnd(flags, %d) != 0)", d.Flag)
		case features.RepeatedSeconds:
			expr = "toUInt64(count() - uniqExact(time))"
		}
		cols = append(cols, expr+" AS "+d.Name)
	}
	for s := range features.Sketch(features.NumSketches) {
		d := s.Def()
		cols = append(cols, fmt.Sprintf("uniqExactIf(%[1]s, %[1]s != 0) AS %[2]s", d.Column, d.Name))
	}
	return strings.Join(cols, ",\n\t")
}

// WindowQuery selects visitor-windows of the history.
type WindowQuery struct {
	// Site is the site whose windows are selected; "" selects every
	// site's, for a baseline pooled over all of them.
	Site     string
	From, To time.Time // requests in [From, To)
	// Sample keeps the visitors whose id modulo one million is below
	// Sample * 1e6: a deterministic sample, the same visitors every build.
	// 1 keeps all.
	Sample float64
	// MinRequests leaves out windows of fewer requests: the detector does
	// not score those, so a baseline should not learn from them. 0 keeps
	// all.
	MinRequests int
	// Limit caps the rows, taken in (visitor, window) order; 0 is no cap.
	Limit int
}

// Windows streams to fn the visitor-windows q selects, aggregated for
// window w, so a large site costs memory for one row at a time.
func Windows(ctx context.Context, conn driver.Conn, table string, w features.Window, q WindowQuery, fn func(VisitorWindow) error) error {
	site := q.Site
	limit := uint64(q.Limit)
	if limit == 0 {
		limit = 1<<63 - 1
	}
	args := []any{q.From.UTC(), q.To.UTC(), uint64(q.Sample * 1e6), uint64(q.MinRequests), limit}
	cond := ""
	if site != "" {
		cond, args = "site = ? AND", append([]any{site}, args...)
	}
	query := fmt.Sprintf(windowsSQL, table, int(w.Width/time.Second), w.Buckets, aggregates(), cond)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("aggregating windows of %q: %w", site, err)
	}
	defer rows.Close()
	var vw VisitorWindow
	dest := []any{&vw.Site, &vw.Visitor, &vw.Window}
	for i := range vw.Agg.Counts {
		dest = append(dest, &vw.Agg.Counts[i])
	}
	for i := range vw.Agg.Distinct {
		dest = append(dest, &vw.Agg.Distinct[i])
	}
	for rows.Next() {
		vw = VisitorWindow{}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("reading windows of %q: %w", site, err)
		}
		if err := fn(vw); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading windows of %q: %w", site, err)
	}
	return nil
}

// Visitors streams to fn the distinct visitors of site with requests in
// [from, to).
func Visitors(ctx context.Context, conn driver.Conn, table, site string, from, to time.Time, fn func(uint64) error) error {
	rows, err := conn.Query(ctx, "SELECT DISTINCT visitor FROM "+table+" WHERE site = ? AND time >= ? AND time < ?", site, from.UTC(), to.UTC())
	if err != nil {
		return fmt.Errorf("listing the visitors of %q: %w", site, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v uint64
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("listing the visitors of %q: %w", site, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing the visitors of %q: %w", site, err)
	}
	return nil
}

// SiteStats is what the requests table holds for one site.
type SiteStats struct {
	Site     string
	Requests uint64
	Newest   time.Time // the newest request's time up to Sites' notAfter; Unix 0 if none
}

// Sites lists the sites of the requests table, by name. Newest ignores
// requests after notAfter, which are no anchor for a baseline (see
// DropOldPartitions).
func Sites(ctx context.Context, conn driver.Conn, table string, notAfter time.Time) ([]SiteStats, error) {
	rows, err := conn.Query(ctx, "SELECT site, count(), maxIf(time, time <= ?) FROM "+table+" FINAL GROUP BY site ORDER BY site", notAfter.UTC())
	if err != nil {
		return nil, fmt.Errorf("listing sites of %s: %w", table, err)
	}
	defer rows.Close()
	var out []SiteStats
	for rows.Next() {
		var s SiteStats
		if err := rows.Scan(&s.Site, &s.Requests, &s.Newest); err != nil {
			return nil, fmt.Errorf("listing sites of %s: %w", table, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing sites of %s: %w", table, err)
	}
	return out, nil
}

// Row is a request of the requests table as far as the features go.
type Row struct {
	Site    string
	Visitor uint64
	Second  uint32 // Unix seconds
	Flags   uint8
	Hashes  [features.NumSketches]uint64
}

// rowsSQL selects the requests of a query, a visitor's in time order and,
// within a second, in the order they were read from Kafka (a visitor's
// requests share a partition: they are keyed by visitor).
const rowsSQL = `SELECT site, visitor, toUInt32(time), flags, %[2]s
FROM %[1]s FINAL
WHERE %[3]s time >= ? AND time < ? AND visitor %% 1000000 < ?
ORDER BY site, visitor, time, kafka_offset`

// Rows streams to fn the requests that q's site, period and sample
// select (not its MinRequests or Limit), in (site, visitor, time) order,
// one row at a time. fn may keep nothing of the row it is given.
func Rows(ctx context.Context, conn driver.Conn, table string, q WindowQuery, fn func(*Row) error) error {
	site := q.Site
	args := []any{q.From.UTC(), q.To.UTC(), uint64(q.Sample * 1e6)}
	cond := ""
	if site != "" {
		cond, args = "site = ? AND", append([]any{site}, args...)
	}
	var hashes []string
	for s := range features.Sketch(features.NumSketches) {
		hashes = append(hashes, s.Def().Column)
	}
	rows, err := conn.Query(ctx, fmt.Sprintf(rowsSQL, table, strings.Join(hashes, ", "), cond), args...)
	if err != nil {
		return fmt.Errorf("reading the requests of %q: %w", site, err)
	}
	defer rows.Close()
	var r Row
	dest := []any{&r.Site, &r.Visitor, &r.Second, &r.Flags}
	for i := range r.Hashes {
		dest = append(dest, &r.Hashes[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("reading the requests of %q: %w", site, err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the requests of %q: %w", site, err)
	}
	return nil
}
