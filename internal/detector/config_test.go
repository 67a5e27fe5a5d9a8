package detector

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// TestMemoryFlags: -memory-limit reads sizes as GOMEMLIMIT writes them and
// refuses anything else naming the value, and -max-visitors must leave
// every worker a share.
func TestMemoryFlags(t *testing.T) {
	tests := []struct {
		args    []string
		limit   int64
		wantErr string
	}{
		{[]string{"-memory-limit", "512MiB"}, 512 << 20, ""},
		{[]string{"-memory-limit", "1GiB"}, 1 << 30, ""},
		{[]string{"-memory-limit", "1000"}, 1000, ""},
		{[]string{"-memory-limit", "12KiB"}, 12 << 10, ""},
		{[]string{"-memory-limit", "lots"}, 0, `"lots" is not a size such as 512MiB`},
		{[]string{"-memory-limit", "-5MiB"}, 0, "not a size"},
		{[]string{"-memory-limit", "99999999TiB"}, 0, "not a size"},
		{[]string{"-workers", "4", "-max-visitors", "100"}, 0, "-max-visitors must be at least 100 per worker (400), got 100"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c := DefaultConfig()
			fs := flag.NewFlagSet("detector", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.RegisterFlags(fs)
			err := fs.Parse(tt.args)
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("%v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			case tt.wantErr == "" && c.MemoryLimit != tt.limit:
				t.Errorf("limit %d, want %d", c.MemoryLimit, tt.limit)
			}
		})
	}
	if got := (*byteSize)(new(int64)).String(); got != "0" {
		t.Errorf("the default prints as %q, want 0", got)
	}
	c := DefaultConfig()
	if got := c.MemoryBudget() >> 20; got != 494 { // as the README and -h say
		t.Errorf("budget at the default -max-visitors %d MiB, want 494", got)
	}
}

// TestScoreFromFlag: -score-from takes an RFC 3339 time, refuses anything
// else naming the flag, and is unset by default (and so not shown as a
// default in -h).
func TestScoreFromFlag(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		c := DefaultConfig()
		fs := flag.NewFlagSet("detector", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		return c, fs.Parse(args)
	}
	c, err := parse("-score-from", "2026-03-02T10:30:00Z")
	if err != nil || !c.ScoreFrom.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("-score-from 2026-03-02T10:30:00Z: %v, %v", c.ScoreFrom, err)
	}
	if _, err := parse("-score-from", "yesterday"); err == nil || !strings.Contains(err.Error(), "-score-from") {
		t.Errorf("-score-from yesterday: %v, want an error naming the flag", err)
	}
	if c, _ := parse(); !c.ScoreFrom.IsZero() {
		t.Errorf("default %v, want unset", c.ScoreFrom)
	}
	var help strings.Builder
	fs := flag.NewFlagSet("detector", flag.ContinueOnError)
	fs.SetOutput(&help)
	c = DefaultConfig()
	c.RegisterFlags(fs)
	fs.PrintDefaults()
	if i := strings.Index(help.String(), "-score-from"); i < 0 || strings.Contains(help.String()[i:], "0001-01-01") {
		t.Errorf("-h shows no -score-from, or a zero time as its default:\n%s", help.String())
	}
}
