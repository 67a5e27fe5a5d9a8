// Package chstore holds anomalyd's ClickHouse tables: their schema, batch
// inserts, and the SQL that aggregates request history into the same
// window features that pkg/features computes live. The SQL works on
// ClickHouse 18.16 (what the tests run) and on current releases: explicit
// column lists in INSERT, partitions by day and no TTL clause (old data goes
// by dropping partitions), no async inserts.
package chstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// Request is one row of the requests table: an observation of pkg/features
// with where it came from. It holds hashes, not raw values: the visitor id
// is the keyed identity hash and paths, user agents, referers, query shapes
// and IPs are the 64-bit hashes the detector's sketches hold, so history in
// ClickHouse is as privacy-preserving as the live window, and distinct
// counts in SQL count exactly what the sketches estimate.
type Request struct {
	Time  time.Time // second resolution in the table
	Site  string
	Obs   features.Observation
	Topic string // where the request was read: with Partition and Offset,
	// the key that makes a replayed Kafka message collapse into one row
	Partition int32
	Offset    int64
}

// requestsColumns is the explicit column list of every insert, in
// InsertRequests' order; ClickHouse 18.16 rejects batch appends without
// one. Each sketch of pkg/features has its hash column.
func requestsColumns() string {
	cols := []string{"time", "site", "visitor", "flags"}
	for s := range features.Sketch(features.NumSketches) {
		cols = append(cols, s.Def().Column)
	}
	return strings.Join(append(cols, "kafka_topic", "kafka_partition", "kafka_offset"), ", ")
}

// RequestsDDL returns the CREATE TABLE statement of a requests table.
//
// ReplacingMergeTree with the Kafka position in the sorting key is the
// exactly-once mechanism: ingest is at-least-once (offsets are committed
// after the insert), and a message inserted twice after a crash has the same
// (site, time, visitor, topic, partition, offset), so merges keep one row and
// queries read with FINAL. 18.16's MergeTree has no insert deduplication of
// its own outside replicated tables.
func RequestsDDL(table string) string {
	var hashes strings.Builder
	for s := range features.Sketch(features.NumSketches) {
		fmt.Fprintf(&hashes, "\n\t%-15s UInt64,", s.Def().Column)
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	time            DateTime,
	site            String,
	visitor         UInt64,
	flags           UInt8,%s
	kafka_topic     String,
	kafka_partition Int32,
	kafka_offset    Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(time)
ORDER BY (site, time, visitor, kafka_topic, kafka_partition, kafka_offset)`, table, hashes.String())
}

// CreateRequests creates the requests table if it does not exist.
func CreateRequests(ctx context.Context, conn driver.Conn, table string) error {
	if err := conn.Exec(ctx, RequestsDDL(table)); err != nil {
		return fmt.Errorf("creating table %s: %w", table, err)
	}
	return nil
}

// InsertRequests writes rows in one batch.
func InsertRequests(ctx context.Context, conn driver.Conn, table string, rows []Request) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+requestsColumns()+")")
	if err != nil {
		return fmt.Errorf("preparing insert into %s: %w", table, err)
	}
	defer batch.Abort()
	args := make([]any, 0, 7+features.NumSketches)
	for i := range rows {
		r := &rows[i]
		args = append(args[:0], r.Time.UTC(), r.Site, r.Obs.Visitor, r.Obs.Flags)
		for _, h := range r.Obs.Hashes {
			args = append(args, h)
		}
		if err := batch.Append(append(args, r.Topic, r.Partition, r.Offset)...); err != nil {
			return fmt.Errorf("appending row %d to %s: %w", i, table, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// DropOldPartitions enforces retention on a table partitioned by day of
// its time column: it drops the daily partitions that end more than
// retention before the newest time in the table, counted from the data
// rather than the clock so that replayed history is kept like live
// traffic. Times after notAfter do not count as the newest: the services
// refuse events further ahead of their clocks, and rows stored before
// they did must not drop the history. It returns the cutoff (zero for a
// table without rows up to notAfter) and the partitions dropped.
func DropOldPartitions(ctx context.Context, conn driver.Conn, table, column string, retention time.Duration, notAfter time.Time) (cutoff time.Time, dropped []string, err error) {
	var newest time.Time
	q := fmt.Sprintf("SELECT max(%[1]s) FROM %[2]s WHERE %[1]s <= ?", column, table)
	if err := conn.QueryRow(ctx, q, notAfter.UTC()).Scan(&newest); err != nil {
		return time.Time{}, nil, fmt.Errorf("newest %s in %s: %w", column, table, err)
	}
	if newest.Unix() <= 0 { // max() of no rows is the zero DateTime
		return time.Time{}, nil, nil
	}
	cutoff = newest.Add(-retention).UTC().Truncate(24 * time.Hour)
	dropped, err = DropPartitionsBefore(ctx, conn, table, cutoff)
	return cutoff, dropped, err
}

// DropPartitionsBefore drops the daily partitions of table whose day ends
// before cutoff, and returns their names (YYYYMMDD). It is how retention
// works without a TTL clause.
func DropPartitionsBefore(ctx context.Context, conn driver.Conn, table string, cutoff time.Time) ([]string, error) {
	day := cutoff.UTC().Format("20060102")
	rows, err := conn.Query(ctx, `SELECT DISTINCT partition FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active AND partition < ?
		ORDER BY partition`, table, day)
	if err != nil {
		return nil, fmt.Errorf("listing partitions of %s: %w", table, err)
	}
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing partitions of %s: %w", table, err)
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing partitions of %s: %w", table, err)
	}
	for i, p := range parts {
		// Partition ids of toYYYYMMDD are digits only, safe to inline.
		if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %s", table, p)); err != nil {
			return parts[:i], fmt.Errorf("dropping partition %s of %s: %w", p, table, err)
		}
	}
	return parts, nil
}
