package detector

import (
	"flag"
	"io"
	"strings"
	"testing"
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
