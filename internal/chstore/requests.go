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

	"github.com/ClickHouse/clickhouse-go/v2"
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

// RequestsDDL returns the statements that create a requests table: on
// one server (cluster ""), the table; on a cluster, a replicated table on
// every server and the Distributed table named table over them (see
// clusterDDL).
//
// ReplacingMergeTree with the Kafka position in the sorting key is the
// exactly-once mechanism: ingest is at-least-once (offsets are committed
// after the insert), and a message inserted twice after a crash has the same
// (site, time, visitor, topic, partition, offset), so merges keep one row and
// queries read with FINAL. 18.16's MergeTree has no insert deduplication of
// its own outside replicated tables. On a cluster a row's shard follows
// from its site and visitor, so a replayed row meets the first on its
// shard.
func RequestsDDL(table, cluster string) []string {
	var hashes strings.Builder
	for s := range features.Sketch(features.NumSketches) {
		fmt.Fprintf(&hashes, "\n\t%-15s UInt64,", s.Def().Column)
	}
	columns := fmt.Sprintf(`(
	time            DateTime,
	site            String,
	visitor         UInt64,
	flags           UInt8,%s
	kafka_topic     String,
	kafka_partition Int32,
	kafka_offset    Int64
)`, hashes.String())
	return tableDDL(table, cluster, columns, "ReplacingMergeTree", `PARTITION BY toYYYYMMDD(time)
ORDER BY (site, time, visitor, kafka_topic, kafka_partition, kafka_offset)`)
}

// tableDDL returns the statements that create table with columns, engine
// (a MergeTree family's, without arguments) and its clauses: the table on
// one server (cluster ""), else, ON CLUSTER, table_local on every server
// with the engine's replicated form (its path in ZooKeeper per shard, the
// {shard} and {replica} macros of each server's config) and table, a
// Distributed table over them, sharded by site and visitor.
func tableDDL(table, cluster, columns, engine, clauses string) []string {
	if cluster == "" {
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s %s ENGINE = %s()\n%s", table, columns, engine, clauses)}
	}
	local := LocalTable(table, cluster)
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s %s ENGINE = Replicated%s('/clickhouse/tables/{shard}/%s', '{replica}')\n%s",
			local, cluster, columns, engine, local, clauses),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s ENGINE = Distributed(%s, currentDatabase(), %s, cityHash64(site, visitor))",
			table, cluster, local, cluster, local),
	}
}

// LocalTable is the name of the servers' own table under the Distributed
// table of a cluster (table itself on one server).
func LocalTable(table, cluster string) string {
	if cluster == "" {
		return table
	}
	return table + "_local"
}

// CreateRequests creates the requests table if it does not exist, on one
// server or on cluster.
func CreateRequests(ctx context.Context, conn driver.Conn, table, cluster string) error {
	for _, q := range RequestsDDL(table, cluster) {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("creating table %s: %w", table, err)
		}
	}
	return nil
}

// insertContext makes an insert into a Distributed table return once
// every shard has its rows, as into a table on one server: offsets are
// committed on the strength of it.
func insertContext(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// InsertRequests writes rows in one batch.
func InsertRequests(ctx context.Context, conn driver.Conn, table string, rows []Request) error {
	batch, err := conn.PrepareBatch(insertContext(ctx), "INSERT INTO "+table+" ("+requestsColumns()+")")
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
func DropOldPartitions(ctx context.Context, conn driver.Conn, table, cluster, column string, retention time.Duration, notAfter time.Time) (cutoff time.Time, dropped []string, err error) {
	var newest time.Time
	q := fmt.Sprintf("SELECT max(%[1]s) FROM %[2]s WHERE %[1]s <= ?", column, table)
	if err := conn.QueryRow(ctx, q, notAfter.UTC()).Scan(&newest); err != nil {
		return time.Time{}, nil, fmt.Errorf("newest %s in %s: %w", column, table, err)
	}
	if newest.Unix() <= 0 { // max() of no rows is the zero DateTime
		return time.Time{}, nil, nil
	}
	cutoff = newest.Add(-retention).UTC().Truncate(24 * time.Hour)
	dropped, err = DropPartitionsBefore(ctx, conn, table, cluster, column, cutoff)
	return cutoff, dropped, err
}

// DropPartitionsBefore drops the daily partitions of table (by day of its
// time column) whose day ends before cutoff, and returns their names
// (YYYYMMDD). It is how retention works without a TTL clause. On a
// cluster the partitions are those any shard has, dropped ON CLUSTER from
// the servers' own tables.
func DropPartitionsBefore(ctx context.Context, conn driver.Conn, table, cluster, column string, cutoff time.Time) ([]string, error) {
	day := cutoff.UTC().Format("20060102")
	list := `SELECT DISTINCT partition FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active AND partition < ?
		ORDER BY partition`
	args := []any{table, day}
	if cluster != "" {
		list = fmt.Sprintf("SELECT DISTINCT toString(toYYYYMMDD(%s)) AS p FROM %s WHERE p < ? ORDER BY p", column, table)
		args = []any{day}
	}
	rows, err := conn.Query(ctx, list, args...)
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
	target := table
	if cluster != "" {
		target = LocalTable(table, cluster) + " ON CLUSTER " + cluster
	}
	for i, p := range parts {
		// Partition ids of toYYYYMMDD are digits only, safe to inline.
		if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %s", target, p)); err != nil {
			return parts[:i], fmt.Errorf("dropping partition %s of %s: %w", p, table, err)
		}
	}
	return parts, nil
}
