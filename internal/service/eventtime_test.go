package service

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestEventTimeCheck(t *testing.T) {
	now := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	cfg := DefaultEventTimeConfig()
	anyAge := cfg
	anyAge.MaxAge = 0
	tests := []struct {
		name    string
		cfg     EventTimeConfig
		t       time.Time
		reason  string
		wantErr error
		msg     string
	}{
		{"now", cfg, now, "", nil, ""},
		{"at the ahead bound", cfg, now.Add(5 * time.Minute), "", nil, ""},
		{"beyond the ahead bound", cfg, now.Add(5*time.Minute + time.Nanosecond), ReasonFuture, ErrFuture, "2026-12-03T20:05:00.000000001Z is 5m0s ahead, more than -max-event-ahead 5m0s"},
		{"decades ahead", cfg, time.Date(2056, 1, 1, 0, 0, 0, 0, time.UTC), ReasonFuture, ErrFuture, "2056-01-01T00:00:00Z is 254884h0m0s ahead"},
		{"at the age bound", cfg, now.Add(-DefaultMaxEventAge), "", nil, ""},
		{"beyond the age bound", cfg, now.Add(-DefaultMaxEventAge - time.Second), ReasonTooOld, ErrTooOld, "2026-11-25T19:59:59Z is 192h0m1s behind, more than -max-event-age 192h0m0s (0 accepts any age)"},
		{"any age: decades back", anyAge, time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), "", nil, ""},
		{"any age: still not ahead", anyAge, now.Add(time.Hour), ReasonFuture, ErrFuture, "1h0m0s ahead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, err := tt.cfg.Check(tt.t, now)
			if reason != tt.reason || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Check: %q, %v; want %q, %v", reason, err, tt.reason, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
	if got, want := cfg.Newest(now), now.Add(5*time.Minute); !got.Equal(want) {
		t.Errorf("Newest = %v, want %v", got, want)
	}
}

func TestEventTimeFlags(t *testing.T) {
	tests := []struct {
		args []string
		want EventTimeConfig
		err  string
	}{
		{nil, DefaultEventTimeConfig(), ""},
		{[]string{"-max-event-age", "0", "-max-event-ahead", "1h"}, EventTimeConfig{MaxAhead: time.Hour}, ""},
		{[]string{"-max-event-ahead", "0"}, EventTimeConfig{}, "-max-event-ahead must be positive, got 0s"},
		{[]string{"-max-event-age", "-1s"}, EventTimeConfig{}, "-max-event-age must be 0 (any age) or positive, got -1s"},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg := DefaultEventTimeConfig()
		cfg.RegisterFlags(fs, "events")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := cfg.Validate()
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: Validate = %v, want %q", tt.args, err, tt.err)
			}
		case err != nil || cfg != tt.want:
			t.Errorf("%q: %+v, %v; want %+v", tt.args, cfg, err, tt.want)
		}
	}
}
