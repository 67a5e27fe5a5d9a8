package chstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// ScoreRow is one row of the scores table: a validated score record and
// its visitor id, parsed once by the caller.
type ScoreRow struct {
	Record  *records.Score
	Visitor uint64
}

// scoresColumns is the explicit column list of every insert; ClickHouse
// 18.16 rejects batch appends without one. The feature columns avoid the
// bare name "values", an SQL keyword.
const scoresColumns = `scored_at, site, visitor, model, score, threshold, baseline_version,
	window_start, window_end, feature_names, feature_values, feature_contributions`

// ScoresDDL returns the statements that create a scores table, on one
// server or on cluster (see RequestsDDL).
//
// A score replayed after a crash (the detector's or the publisher's, both
// at-least-once) is the identical record, so ReplacingMergeTree ordered by
// (site, visitor, scored_at) collapses it into one row; read with FINAL.
// Two different scores of a visitor within one second collapse too, which
// loses nothing that matters: the detector re-scores a visitor at most
// once per rescore interval (30 s by default). model is the candidate
// model of a shadow score, empty for the live model's; it is in the key,
// so that a candidate's score never replaces the live one of the same
// window. The three arrays are parallel, one entry per feature in the
// model's order.
func ScoresDDL(table, cluster string) []string {
	return tableDDL(table, cluster, `(
	scored_at             DateTime,
	site                  String,
	visitor               UInt64,
	model                 String,
	score                 Float64,
	threshold             Float64,
	baseline_version      String,
	window_start          DateTime,
	window_end            DateTime,
	feature_names         Array(String),
	feature_values        Array(Float64),
	feature_contributions Array(Float64)
)`, "ReplacingMergeTree", `PARTITION BY toYYYYMMDD(scored_at)
ORDER BY (site, visitor, scored_at, model)`)
}

// CreateScores creates the scores table if it does not exist, on one
// server or on cluster, and gives a table of one server made before model
// names its model column, at the end of its key (what 18.16 allows of a
// new column: one without a default expression; a String's is ” anyway).
func CreateScores(ctx context.Context, conn driver.Conn, table, cluster string) error {
	for _, q := range ScoresDDL(table, cluster) {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("creating table %s: %w", table, err)
		}
	}
	if cluster != "" { // made with the model column: clusters came after it
		return nil
	}
	db, args := "currentDatabase()", []any{table}
	if d, t, ok := strings.Cut(table, "."); ok {
		db, args = "?", []any{d, t}
	}
	var n uint64
	q := "SELECT count() FROM system.columns WHERE database = " + db + " AND table = ? AND name = 'model'"
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return fmt.Errorf("looking for the model column of %s: %w", table, err)
	}
	if n > 0 {
		return nil
	}
	alter := fmt.Sprintf("ALTER TABLE %s ADD COLUMN model String AFTER visitor, MODIFY ORDER BY (site, visitor, scored_at, model)", table)
	if err := conn.Exec(ctx, alter); err != nil {
		return fmt.Errorf("adding the model column to %s: %w", table, err)
	}
	return nil
}

// The range of ClickHouse's DateTime, seconds since the epoch in a UInt32.
var (
	minDateTime = time.Unix(0, 0)
	maxDateTime = time.Unix(1<<32-1, 0)
)

// ErrOutOfRange is a record whose times a DateTime column cannot hold.
var ErrOutOfRange = errors.New("time outside ClickHouse DateTime range (1970 to 2106)")

// CheckScoreTimes reports a score whose times the table cannot store.
// Records.Score.Validate accepts any non-zero time; a row that cannot be
// appended would fail its whole batch on every retry, so callers refuse
// such records before they reach InsertScores.
func CheckScoreTimes(s *records.Score) error {
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"scored_at", s.ScoredAt}, {"window_start", s.WindowStart}, {"window_end", s.WindowEnd}} {
		if f.t.Before(minDateTime) || f.t.After(maxDateTime) {
			return fmt.Errorf("field %q: %s: %w", f.name, f.t.Format(time.RFC3339), ErrOutOfRange)
		}
	}
	return nil
}

// RowError is a row InsertScores could not append: the data, not the
// server, is at fault, so retrying the same batch cannot succeed.
type RowError struct {
	Index int // into the rows given to InsertScores
	Err   error
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %v", e.Index, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// InsertScores writes rows in one batch. An error wrapping *RowError names
// a row that can never be inserted; any other error is the server's or the
// connection's, worth retrying.
func InsertScores(ctx context.Context, conn driver.Conn, table string, rows []ScoreRow) error {
	batch, err := conn.PrepareBatch(insertContext(ctx), "INSERT INTO "+table+" ("+scoresColumns+")")
	if err != nil {
		return fmt.Errorf("preparing insert into %s: %w", table, err)
	}
	defer batch.Abort()
	// The driver copies array elements into its column buffers, so one set
	// of scratch slices serves every row.
	var names []string
	var values, contribs []float64
	for i := range rows {
		s := rows[i].Record
		names, values, contribs = names[:0], values[:0], contribs[:0]
		for _, c := range s.Features {
			names = append(names, c.Feature)
			values = append(values, c.Value)
			contribs = append(contribs, c.Contribution)
		}
		err := batch.Append(s.ScoredAt.UTC(), s.Site, rows[i].Visitor, s.Model, s.Score, s.Threshold, s.BaselineVersion,
			s.WindowStart.UTC(), s.WindowEnd.UTC(), names, values, contribs)
		if err != nil {
			return fmt.Errorf("appending to %s: %w", table, &RowError{Index: i, Err: err})
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}
