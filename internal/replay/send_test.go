package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// fakeWriter records what it is sent, copied (a Sender reuses the memory),
// with the time of each write on the Sender's clock.
type fakeWriter struct {
	clock   *fakeClock // nil: no times
	msgs    []kafka.Message
	writes  []int       // messages per write
	times   []time.Time // of each write
	fail    func(write int, msgs []kafka.Message) error
	onWrite func(write int) // runs before the write is recorded
}

func (w *fakeWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	write := len(w.writes)
	if w.onWrite != nil {
		w.onWrite(write)
	}
	if w.fail != nil {
		if err := w.fail(write, msgs); err != nil {
			return err
		}
	}
	w.writes = append(w.writes, len(msgs))
	if w.clock != nil {
		w.times = append(w.times, w.clock.now)
	}
	for _, m := range msgs {
		w.msgs = append(w.msgs, kafka.Message{Key: bytes.Clone(m.Key), Value: bytes.Clone(m.Value)})
	}
	return nil
}

// fakeClock is virtual time: Sleep advances it at once.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// generated returns n human requests of a small population as JSON lines.
func generated(t testing.TB, n int, labels bool) []byte {
	t.Helper()
	cfg := traffic.DefaultConfig()
	cfg.Sites, cfg.Visitors, cfg.Events = 3, 500, n
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := traffic.WriteJSONL(&buf, reqs, labels); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustSend(t *testing.T, cfg Config, input string, w MessageWriter) Stats {
	t.Helper()
	st, err := Send(t.Context(), cfg, strings.NewReader(input), w)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return st
}

func TestKeys(t *testing.T) {
	const (
		base = `"EdgeStartTimestamp":"2026-01-01T00:00:00Z","ZoneName":"Shop.Example","ClientRequestUserAgent":"UA"`
		v4   = `{` + base + `,"ClientIP":"192.0.2.7","JA3Hash":"e7d705a3286e19ea42f587b344ee6865","JA4":"t13d1516h2_8daaf6152771_02713d6af862"}`
		v4m  = `{` + base + `,"ClientIP":"::ffff:192.0.2.7"}`
		v6   = `{` + base + `,"ClientIP":"2001:DB8::1"}`
	)
	tests := []struct {
		identity string
		line     string
		key      string // "" for none
		unkeyed  bool
	}{
		{"ip", v4, "shop.example|192.0.2.7", false},
		{"ip", v4m, "shop.example|192.0.2.7", false}, // one client, one key
		{"ip", v6, "shop.example|2001:db8::1", false},
		{"ip+ua", v4, "shop.example|192.0.2.7", false},
		{"ja3", v4, "shop.example|e7d705a3286e19ea42f587b344ee6865", false},
		{"ja4", v4, "shop.example|t13d1516h2_8daaf6152771_02713d6af862", false},
		{"ja3", v6, "", true}, // plain HTTP: no fingerprint
	}
	for _, tt := range tests {
		t.Run(tt.identity+"/"+tt.key, func(t *testing.T) {
			cfg := DefaultConfig()
			if err := cfg.Identity.Set(tt.identity); err != nil {
				t.Fatal(err)
			}
			var warned []*LineError
			cfg.Warn = func(e *LineError) { warned = append(warned, e) }
			var w fakeWriter
			st := mustSend(t, cfg, tt.line+"\n", &w)
			if len(w.msgs) != 1 || string(w.msgs[0].Value) != tt.line {
				t.Fatalf("sent %d messages (%v), want the line unchanged", len(w.msgs), w.msgs)
			}
			if got := w.msgs[0].Key; string(got) != tt.key || (tt.key == "") != (got == nil) {
				t.Errorf("key %q, want %q", got, tt.key)
			}
			if tt.unkeyed != (st.Unkeyed == 1) || len(warned) != int(st.Unkeyed) {
				t.Errorf("stats %+v, %d warnings; unkeyed %v", st, len(warned), tt.unkeyed)
			}
			if tt.unkeyed && !errors.Is(warned[0], features.ErrNoFingerprint) {
				t.Errorf("warning %v, want ErrNoFingerprint", warned[0])
			}
		})
	}
}

// TestKeysFollowFields checks that keys come from the mapped fields.
func TestKeysFollowFields(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Fields.Set("nginx"); err != nil {
		t.Fatal(err)
	}
	var w fakeWriter
	mustSend(t, cfg, `{"time_iso8601":"2026-01-01T00:00:00+00:00","host":"a.example","remote_addr":"198.51.100.4"}`, &w)
	if len(w.msgs) != 1 || string(w.msgs[0].Key) != "a.example|198.51.100.4" {
		t.Errorf("sent %v, want key a.example|198.51.100.4", w.msgs)
	}
}

// TestMalformedPassThrough checks that nothing is dropped: every non-empty
// line goes out unchanged, in order, the malformed ones without a key, and
// the first few are reported with their line numbers.
func TestMalformedPassThrough(t *testing.T) {
	good := `{"EdgeStartTimestamp":1767225600000000000,"ZoneName":"a.example","ClientIP":"192.0.2.1","label":"human"}`
	lines := []string{
		good,
		`not json`,
		``,
		`{"ZoneName":"a.example","ClientIP":"192.0.2.1"}`, // no time
		"   \t",
		good + "\r", // CRLF file
		`{"EdgeStartTimestamp":1767225600000000000,"ZoneName":"a.example","ClientIP":"nope"}`,
		`[]`, `1`, `{`, `null`, // more than MaxWarnings
		good, // last line, no newline
	}
	input := strings.Join(lines, "\n")
	var warned []string
	cfg := DefaultConfig()
	cfg.Warn = func(e *LineError) { warned = append(warned, e.Error()) }
	var w fakeWriter
	st, err := Send(t.Context(), cfg, strings.NewReader(input), &w)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			want = append(want, strings.TrimSuffix(l, "\r"))
		}
	}
	if len(w.msgs) != len(want) {
		t.Fatalf("sent %d messages, want %d", len(w.msgs), len(want))
	}
	for i, m := range w.msgs {
		if string(m.Value) != want[i] {
			t.Errorf("message %d = %q, want %q", i, m.Value, want[i])
		}
		if keyed := m.Key != nil; keyed != (want[i] == good) {
			t.Errorf("message %d %q has key %q", i, m.Value, m.Key)
		}
	}
	wantStats := Stats{Events: int64(len(want)), Malformed: int64(len(want) - 3), Empty: 2}
	st.Elapsed = 0
	if st != wantStats {
		t.Errorf("stats %+v, want %+v", st, wantStats)
	}
	if !strings.Contains(st.String(), "7 malformed") {
		t.Errorf("summary %q does not count the malformed lines", st)
	}
	wantWarned := []string{
		`input:2: malformed event: invalid JSON`,
		`input:4: malformed event: field "EdgeStartTimestamp": missing`,
		`input:7: malformed event: field "ClientIP": not an IP address: "nope"`,
		`input:8: malformed event: want a JSON object, got array`,
		`input:9: malformed event: want a JSON object, got number`,
	}
	if len(warned) != MaxWarnings {
		t.Fatalf("%d warnings, want the first %d: %q", len(warned), MaxWarnings, warned)
	}
	for i, w := range wantWarned {
		if !strings.HasPrefix(warned[i], w) {
			t.Errorf("warning %d = %q, want prefix %q", i, warned[i], w)
		}
	}
}

func TestBatches(t *testing.T) {
	input := generated(t, 1000, true)
	for _, tt := range []struct {
		batch  int
		writes []int
	}{
		{1000, []int{1000}},
		{300, []int{300, 300, 300, 100}},
		{1, nil}, // 1000 writes of 1
	} {
		t.Run(fmt.Sprint(tt.batch), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Batch = tt.batch
			var w fakeWriter
			st := mustSend(t, cfg, string(input), &w)
			if st.Events != 1000 || len(w.msgs) != 1000 || st.Malformed != 0 {
				t.Fatalf("stats %+v, %d messages; want 1000 events, none malformed", st, len(w.msgs))
			}
			if tt.writes != nil && fmt.Sprint(w.writes) != fmt.Sprint(tt.writes) {
				t.Errorf("writes %v, want %v", w.writes, tt.writes)
			}
			if tt.writes == nil && len(w.writes) != 1000 {
				t.Errorf("%d writes, want 1000", len(w.writes))
			}
			// Every key is site|ClientIP of its own line: the reused
			// memory did not mix messages up.
			dec, _ := features.NewDecoder(features.DefaultFieldMap())
			var ev features.Event
			for i, m := range w.msgs {
				if err := dec.Decode(m.Value, &ev); err != nil {
					t.Fatal(err)
				}
				if want := ev.Site + "|" + ev.ClientIP.String(); string(m.Key) != want {
					t.Fatalf("message %d has key %q, want %q", i, m.Key, want)
				}
			}
		})
	}
}

// TestRate checks the pacing on virtual time: at 100 events/s, writes of
// a tenth of a second's events, a tenth of a second apart.
func TestRate(t *testing.T) {
	clk := newFakeClock()
	start := clk.now
	cfg := DefaultConfig()
	cfg.Rate, cfg.clock = 100, clk
	w := fakeWriter{clock: clk}
	st := mustSend(t, cfg, string(generated(t, 1000, false)), &w)
	if len(w.writes) != 100 {
		t.Fatalf("%d writes, want 100 of 10 events", len(w.writes))
	}
	for i, n := range w.writes {
		if n != 10 {
			t.Fatalf("write %d has %d events, want 10", i, n)
		}
		if got, want := w.times[i].Sub(start), time.Duration(i)*100*time.Millisecond; got != want {
			t.Fatalf("write %d at %v, want %v", i, got, want)
		}
	}
	if st.Elapsed != 9900*time.Millisecond || st.Events != 1000 {
		t.Errorf("stats %+v, want 1000 events in 9.9 s", st)
	}
}

// TestRateFractional checks a rate below one event a second.
func TestRateFractional(t *testing.T) {
	clk := newFakeClock()
	cfg := DefaultConfig()
	cfg.Rate, cfg.clock = 0.5, clk
	w := fakeWriter{clock: clk}
	mustSend(t, cfg, string(generated(t, 4, false)), &w)
	if fmt.Sprint(w.writes) != "[1 1 1 1]" || w.times[3].Sub(w.times[0]) != 6*time.Second {
		t.Errorf("writes %v at %v, want 4 of 1, 2 s apart", w.writes, w.times)
	}
}

// TestRateNoBurstAfterStall checks that after the writer stalls the pacer
// resumes the rate rather than bursting to catch up.
func TestRateNoBurstAfterStall(t *testing.T) {
	clk := newFakeClock()
	cfg := DefaultConfig()
	cfg.Rate, cfg.clock = 100, clk
	w := fakeWriter{clock: clk}
	w.onWrite = func(write int) {
		if write == 10 {
			clk.now = clk.now.Add(5 * time.Second) // a slow broker
		}
	}
	mustSend(t, cfg, string(generated(t, 500, false)), &w)
	for i := 12; i < len(w.times); i++ {
		if gap := w.times[i].Sub(w.times[i-1]); gap != 100*time.Millisecond {
			t.Fatalf("writes %d and %d are %v apart, want 100ms", i-1, i, gap)
		}
	}
}

func TestProgress(t *testing.T) {
	clk := newFakeClock()
	cfg := DefaultConfig()
	cfg.Rate, cfg.clock, cfg.Progress = 100, clk, 2*time.Second
	var got []Stats
	cfg.OnProgress = func(s Stats) { got = append(got, s) }
	mustSend(t, cfg, string(generated(t, 1000, false)), &fakeWriter{})
	// Writes end at 0.1 s, 0.2 s, ...: progress at 2 s, 4 s, 6 s, 8 s.
	if len(got) != 4 {
		t.Fatalf("%d progress calls, want 4: %+v", len(got), got)
	}
	for i, s := range got {
		if want := time.Duration(i+1) * 2 * time.Second; s.Elapsed != want || s.Events != int64(want/time.Second*100)+10 {
			t.Errorf("progress %d: %+v, want %d events at %v", i, s, int64(want/time.Second*100)+10, want)
		}
	}
}

// TestWriteError checks that a failed write stops the Sender with the
// lines it held, and that what partitions did take is counted.
func TestWriteError(t *testing.T) {
	boom := errors.New("broker down")
	cfg := DefaultConfig()
	cfg.Batch = 100
	w := fakeWriter{fail: func(write int, msgs []kafka.Message) error {
		if write < 2 {
			return nil
		}
		werrs := make(kafka.WriteErrors, len(msgs))
		for i := range werrs {
			if i%4 == 0 {
				werrs[i] = boom
			}
		}
		return werrs
	}}
	st, err := Send(t.Context(), cfg, strings.NewReader(string(generated(t, 1000, false))), &w)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "input:201-300: 25 of 100 events failed: broker down") {
		t.Fatalf("error %v, want the broker's error for input:201-300", err)
	}
	if st.Events != 275 {
		t.Errorf("%d events counted, want 200 + 75 acknowledged", st.Events)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cfg := DefaultConfig()
	cfg.Batch = 10
	w := fakeWriter{onWrite: func(write int) {
		if write == 3 {
			cancel()
		}
	}}
	st, err := Send(ctx, cfg, strings.NewReader(string(generated(t, 100, false))), &w)
	if !errors.Is(err, context.Canceled) || st.Events != 40 {
		t.Errorf("error %v after %d events, want context.Canceled after 40", err, st.Events)
	}
}

func TestLongLines(t *testing.T) {
	long := `{"EdgeStartTimestamp":"2026-01-01T00:00:00Z","ZoneName":"a.example","ClientIP":"192.0.2.1","ClientRequestPath":"/` +
		strings.Repeat("x", 200_000) + `"}`
	var w fakeWriter
	st := mustSend(t, DefaultConfig(), long+"\n"+long, &w) // longer than the read buffer
	if st.Events != 2 || st.Malformed != 0 || string(w.msgs[1].Value) != long || string(w.msgs[1].Key) != "a.example|192.0.2.1" {
		t.Errorf("stats %+v; want 2 events sent whole", st)
	}

	tooLong := strings.Repeat("y", MaxLine+1)
	_, err := Send(t.Context(), DefaultConfig(), strings.NewReader(long+"\n"+tooLong+"\n"+long), &fakeWriter{})
	if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), "input:2") {
		t.Errorf("error %v, want ErrLineTooLong at input:2", err)
	}
	// Exactly MaxLine is fine, with or without "\r\n".
	exact := strings.Repeat("z", MaxLine)
	st, err = Send(t.Context(), DefaultConfig(), strings.NewReader(exact+"\r\n"+exact), &fakeWriter{})
	if err != nil || st.Events != 2 {
		t.Errorf("%+v, %v; want 2 events of MaxLine bytes", st, err)
	}
}

func TestSenderAcrossInputs(t *testing.T) {
	clk := newFakeClock()
	cfg := DefaultConfig()
	cfg.clock = clk
	var warned []string
	cfg.Warn = func(e *LineError) { warned = append(warned, e.Error()) }
	var w fakeWriter
	s, err := NewSender(cfg, &w)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []struct{ name, text string }{{"a.jsonl", "bad\n"}, {"b.jsonl", string(generated(t, 10, false)) + "worse"}} {
		if err := s.Send(t.Context(), in.name, strings.NewReader(in.text)); err != nil {
			t.Fatal(err)
		}
		clk.now = clk.now.Add(time.Second)
	}
	if st := s.Stats(); st.Events != 12 || st.Malformed != 2 || st.Elapsed != 2*time.Second {
		t.Errorf("stats %+v, want 12 events, 2 malformed, in 2 s", st)
	}
	if len(warned) != 2 || !strings.HasPrefix(warned[0], "a.jsonl:1: ") || !strings.HasPrefix(warned[1], "b.jsonl:11: ") {
		t.Errorf("warnings %q, want a.jsonl:1 and b.jsonl:11", warned)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"negative rate", func(c *Config) { c.Rate = -1 }, "-rate"},
		{"rate too low", func(c *Config) { c.Rate = MinRate / 2 }, "at least 0.001"},
		{"batch too big", func(c *Config) { c.Batch = MaxBatch + 1 }, "-batch"},
		{"negative batch", func(c *Config) { c.Batch = -1 }, "-batch"},
		{"negative progress", func(c *Config) { c.Progress = -time.Second }, "-progress"},
		{"no time field", func(c *Config) { c.Fields.Time = "" }, "-fields"},
		{"identity", func(c *Config) { c.Identity = 9 }, "-identity"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			if _, err := NewSender(cfg, &fakeWriter{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}
