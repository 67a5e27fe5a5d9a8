package chstore

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// VisitorWindow is one visitor's behaviour over one window of the history,
// aggregated as pkg/features aggregates a live window.
type VisitorWindow struct {
	Visitor uint64
	Window  uint32 // the window's index: its first bucket / Window.Buckets
	Agg     features.Aggregate
}

// windowsSQL aggregates a site's history into per-(visitor, window) rows,
// with exactly the definitions of the pkg/features table: counts of
// requests, of 4xx, non-GET, referer-less and asset requests, of requests
// in a second the visitor had already sent one in (time is in seconds),
// and exact distinct counts of the non-zero hashes, which are what the live
// sketches estimate. Windows
// tumble: window w holds the buckets w*B .. w*B+B-1, the same set a live
// window ending at its last bucket covers.
const windowsSQL = `SELECT
	visitor,
	toUInt32(intDiv(intDiv(toUInt32(time), %[2]d), %[3]d)) AS window,
	count() AS requests,
	countIf(bitAnd(flags, %[4]d) != 0) AS n4xx,
	countIf(bitAnd(flags, %[5]d) != 0) AS non_get,
	countIf(bitAnd(flags, %[6]d) != 0) AS no_referer,
	countIf(bitAnd(flags, %[7]d) != 0) AS assets,
	toUInt64(requests - uniqExact(time)) AS same_second,
	uniqExactIf(path_hash, path_hash != 0) AS paths,
	uniqExactIf(ua_hash, ua_hash != 0) AS uas,
	uniqExactIf(shape_hash, shape_hash != 0) AS shapes,
	uniqExactIf(ip_hash, ip_hash != 0) AS ips
FROM %[1]s FINAL
WHERE site = ? AND time >= ? AND time < ? AND visitor %% 1000000 < ?
GROUP BY visitor, window
HAVING requests >= ?
ORDER BY visitor, window
LIMIT ?`

// WindowQuery selects the visitor-windows of one site.
type WindowQuery struct {
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
	query := fmt.Sprintf(windowsSQL, table, int(w.Width/time.Second), w.Buckets, features.Flag4xx, features.FlagNonGET, features.FlagNoReferer, features.FlagAsset)
	limit := uint64(q.Limit)
	if limit == 0 {
		limit = 1<<63 - 1
	}
	rows, err := conn.Query(ctx, query, site, q.From.UTC(), q.To.UTC(), uint64(q.Sample*1e6), uint64(q.MinRequests), limit)
	if err != nil {
		return fmt.Errorf("aggregating windows of %q: %w", site, err)
	}
	defer rows.Close()
	for rows.Next() {
		var vw VisitorWindow
		var req, n4xx, nonGet, noRef, assets, same, paths, uas, shapes, ips uint64
		if err := rows.Scan(&vw.Visitor, &vw.Window, &req, &n4xx, &nonGet, &noRef, &assets, &same, &paths, &uas, &shapes, &ips); err != nil {
			return fmt.Errorf("reading windows of %q: %w", site, err)
		}
		a := &vw.Agg
		a.Counts[features.CountRequests], a.Counts[features.Count4xx], a.Counts[features.CountNonGET] = req, n4xx, nonGet
		a.Counts[features.CountNoReferer], a.Counts[features.CountAssets], a.Counts[features.CountSameSecond] = noRef, assets, same
		a.Distinct[features.SketchPaths], a.Distinct[features.SketchUserAgents] = paths, uas
		a.Distinct[features.SketchQueryShapes], a.Distinct[features.SketchIPs] = shapes, ips
		if err := fn(vw); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading windows of %q: %w", site, err)
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
