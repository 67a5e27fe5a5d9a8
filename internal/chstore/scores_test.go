package chstore

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/records"
)

func score(site string, visitor uint64, at time.Time, s float64) *records.Score {
	return &records.Score{
		V: records.Version, Site: site, Visitor: records.VisitorID(visitor),
		Score: s, Threshold: 10,
		Features: []records.Contribution{
			{Feature: "requests", Value: 3.5, Contribution: s / 2},
			{Feature: "paths", Value: 1.25, Contribution: s / 2},
		},
		WindowStart: at.Add(-10 * time.Minute), WindowEnd: at, BaselineVersion: `"v1"`, ScoredAt: at,
	}
}

func TestScoresTable(t *testing.T) {
	_, conn := testenv.ClickHouseConn(t)
	ctx := t.Context()
	if err := CreateScores(ctx, conn, "scores", ""); err != nil {
		t.Fatal(err)
	}
	if err := CreateScores(ctx, conn, "scores", ""); err != nil {
		t.Fatalf("creating an existing table: %v", err)
	}
	newest := time.Date(2024, 3, 20, 12, 0, 0, 0, time.UTC)
	var rows []ScoreRow
	for i, age := range []time.Duration{0, 24 * time.Hour, 3 * 24 * time.Hour, 10 * 24 * time.Hour} {
		v := uint64(0xfedcba9876543210) + uint64(i)
		rows = append(rows, ScoreRow{Record: score("a.example", v, newest.Add(-age), 12+float64(i)), Visitor: v})
	}
	// A replay of the first row, as after a crash before the commit.
	rows = append(rows, rows[0])
	if err := InsertScores(ctx, conn, "scores", rows); err != nil {
		t.Fatal(err)
	}
	if err := InsertScores(ctx, conn, "scores", rows[:1]); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM scores FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("%d rows with FINAL, want 4 (replays collapse)", n)
	}

	var (
		at, ws, we       time.Time
		site, version    string
		visitor          uint64
		sc, th           float64
		names            []string
		values, contribs []float64
	)
	err := conn.QueryRow(ctx, `SELECT scored_at, site, visitor, score, threshold, baseline_version,
		window_start, window_end, feature_names, feature_values, feature_contributions
		FROM scores FINAL WHERE visitor = ?`, rows[0].Visitor).Scan(&at, &site, &visitor, &sc, &th, &version, &ws, &we, &names, &values, &contribs)
	if err != nil {
		t.Fatal(err)
	}
	want := rows[0].Record
	if !at.Equal(want.ScoredAt) || site != want.Site || visitor != rows[0].Visitor || sc != want.Score ||
		th != want.Threshold || version != want.BaselineVersion || !ws.Equal(want.WindowStart) || !we.Equal(want.WindowEnd) {
		t.Errorf("row read back: %v %s %x %v %v %s %v %v, want %+v", at, site, visitor, sc, th, version, ws, we, want)
	}
	if !slices.Equal(names, []string{"requests", "paths"}) || !slices.Equal(values, []float64{3.5, 1.25}) ||
		!slices.Equal(contribs, []float64{6, 6}) {
		t.Errorf("features read back: %v %v %v", names, values, contribs)
	}

	// A score from decades ahead, stored before the publisher refused
	// such times: retention must not count back from it.
	future := ScoreRow{Record: score("a.example", 1, time.Date(2056, 1, 1, 0, 0, 0, 0, time.UTC), 1), Visitor: 1}
	if err := InsertScores(ctx, conn, "scores", []ScoreRow{future}); err != nil {
		t.Fatal(err)
	}
	cutoff, dropped, err := DropOldPartitions(ctx, conn, "scores", "", "scored_at", 5*24*time.Hour, newest.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC); !cutoff.Equal(want) {
		t.Errorf("cutoff %v, want %v: the day 5 days before the newest score up to notAfter", cutoff, want)
	}
	if !slices.Equal(dropped, []string{"20240310"}) {
		t.Errorf("dropped %v, want the partition 10 days before the newest score", dropped)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM scores FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("%d rows after retention, want 4: the 3 within 5 days and the one from 2056", n)
	}
}

func TestDropOldPartitionsEmptyTable(t *testing.T) {
	_, conn := testenv.ClickHouseConn(t)
	if err := CreateScores(t.Context(), conn, "empty_scores", ""); err != nil {
		t.Fatal(err)
	}
	cutoff, dropped, err := DropOldPartitions(t.Context(), conn, "empty_scores", "", "scored_at", time.Hour, time.Now())
	if err != nil || len(dropped) != 0 || !cutoff.IsZero() {
		t.Errorf("empty table: cutoff %v, dropped %v, %v", cutoff, dropped, err)
	}
}

func TestCheckScoreTimes(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		edit    func(*records.Score)
		wantErr string
	}{
		{"ok", func(*records.Score) {}, ""},
		{"before 1970", func(s *records.Score) { s.ScoredAt = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) }, `"scored_at"`},
		{"window start year 1", func(s *records.Score) { s.WindowStart = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC) }, `"window_start"`},
		{"after 2106", func(s *records.Score) { s.WindowEnd = time.Date(2107, 1, 1, 0, 0, 0, 0, time.UTC) }, `"window_end"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := score("a.example", 1, now, 1)
			tt.edit(s)
			err := CheckScoreTimes(s)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want ErrOutOfRange naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestScoresTableModels: a candidate model's score of a window is kept
// next to the live one's, in a new table and in one made before model
// names (whose rows read as the live model's).
func TestScoresTableModels(t *testing.T) {
	_, conn := testenv.ClickHouseConn(t)
	ctx := t.Context()
	// The table as it was made before model names.
	old := strings.Replace(strings.Replace(ScoresDDL("old_scores", "")[0], "\tmodel                 String,\n", "", 1), ", model)", ")", 1)
	if strings.Contains(old, "model") {
		t.Fatalf("the old DDL still names the model:\n%s", old)
	}
	if err := conn.Exec(ctx, old); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 3, 20, 12, 0, 0, 0, time.UTC)
	before := score("a.example", 1, at.Add(-time.Minute), 5)
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO old_scores (scored_at, site, visitor, score, threshold, baseline_version,
		window_start, window_end, feature_names, feature_values, feature_contributions)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(before.ScoredAt, "a.example", uint64(1), 5.0, 10.0, "v1", before.WindowStart, before.WindowEnd,
		[]string{"requests"}, []float64{1}, []float64{5}); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"new_scores", "old_scores"} {
		if err := CreateScores(ctx, conn, table, ""); err != nil {
			t.Fatal(err)
		}
		if err := CreateScores(ctx, conn, table, ""); err != nil {
			t.Fatalf("%s, again: %v", table, err)
		}
		live, shadow := score("a.example", 1, at, 12), score("a.example", 1, at, 30)
		shadow.Model = "bins-20"
		rows := []ScoreRow{{Record: live, Visitor: 1}, {Record: shadow, Visitor: 1}, {Record: shadow, Visitor: 1}}
		if err := InsertScores(ctx, conn, table, rows); err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		r, err := conn.Query(ctx, "SELECT model, score FROM "+table+" FINAL WHERE scored_at = ?", at)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var m string
			var s float64
			if err := r.Scan(&m, &s); err != nil {
				t.Fatal(err)
			}
			got[m] = s
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if len(got) != 2 || got[""] != 12 || got["bins-20"] != 30 {
			t.Errorf("%s: scores by model %v, want the live 12 and the candidate's 30", table, got)
		}
	}
	var m string
	if err := conn.QueryRow(ctx, "SELECT model FROM old_scores FINAL WHERE scored_at = ?", before.ScoredAt).Scan(&m); err != nil || m != "" {
		t.Errorf("a row from before model names: model %q, %v; want the live model's", m, err)
	}
}

// TestScoresOnCluster: the scores table on a cluster of two shards, as
// the publisher makes and keeps it: created ON CLUSTER (twice), rows of
// every visitor through the Distributed table, a replay collapsing, a
// candidate's score next to the live one, and retention dropping old
// days from every shard.
func TestScoresOnCluster(t *testing.T) {
	c := testenv.ClickHouseCluster(t)
	conn, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := t.Context()
	const cluster = testenv.ClickHouseClusterName
	for range 2 {
		if err := CreateScores(ctx, conn, "scores", cluster); err != nil {
			t.Fatal(err)
		}
	}
	newest := time.Date(2024, 3, 20, 12, 0, 0, 0, time.UTC)
	var rows []ScoreRow
	for v := range uint64(40) {
		for _, age := range []time.Duration{0, 10 * 24 * time.Hour} {
			rows = append(rows, ScoreRow{Record: score("a.example", v, newest.Add(-age), 12), Visitor: v})
		}
	}
	shadow := score("a.example", 1, newest, 30)
	shadow.Model = "wide"
	rows = append(rows, ScoreRow{Record: shadow, Visitor: 1})
	for range 2 { // the second a replay
		if err := InsertScores(ctx, conn, "scores", rows); err != nil {
			t.Fatal(err)
		}
	}
	count := func() uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM scores FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != uint64(len(rows)) {
		t.Errorf("%d rows with FINAL, want %d: replays collapse on their shard", n, len(rows))
	}
	for i, s := range c.Servers() {
		one, err := s.Open()
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		err = one.QueryRow(ctx, "SELECT count() FROM "+LocalTable("scores", cluster)).Scan(&n)
		one.Close()
		if err != nil || n == 0 {
			t.Errorf("shard %d holds %d rows (%v)", i+1, n, err)
		}
	}
	cutoff, dropped, err := DropOldPartitions(ctx, conn, "scores", cluster, "scored_at", 5*24*time.Hour, newest.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{"20240310"}) || !cutoff.Equal(time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("retention: cutoff %v, dropped %v", cutoff, dropped)
	}
	if n := count(); n != 41 {
		t.Errorf("%d rows after retention, want the 40 recent live ones and the candidate's", n)
	}
}
