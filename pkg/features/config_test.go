package features

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{
		"-window-buckets", "5", "-window-bucket-width", "30s", "-identity", "ja4",
		"-identity-secret", "0123456789abcdef", "-fields", "nginx", "-min-requests", "3",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{Window{5, 30 * time.Second}, IdentityJA4, "0123456789abcdef", NginxFieldMap(), 3, DefaultClassRules}
	if c != want {
		t.Errorf("config = %+v, want %+v", c, want)
	}

	var d Config
	fs = flag.NewFlagSet("defaults", flag.ContinueOnError)
	d.RegisterFlags(fs)
	if d.Window != DefaultWindow() || d.Identity != IdentityIP || d.Fields != DefaultFieldMap() || d.MinRequests != DefaultMinRequests {
		t.Errorf("defaults = %+v", d)
	}
	if err := d.Validate(); !errors.Is(err, ErrIdentityKey) {
		t.Errorf("no secret: err = %v, want ErrIdentityKey", err)
	}
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	for _, f := range []string{"window-buckets", "window-bucket-width", "identity", "identity-secret", "fields", "min-requests"} {
		if !strings.Contains(help.String(), "-"+f) {
			t.Errorf("-h does not mention -%s", f)
		}
	}
}

func TestConfigFlagErrors(t *testing.T) {
	tests := [][]string{
		{"-identity", "cookie"},
		{"-fields", "nosuchfield=x"},
		{"-window-bucket-width", "soon"},
		{"-identity-secret", "0123456789abcdef", "-min-requests", "0"},
	}
	for _, args := range tests {
		var c Config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		if err := fs.Parse(args); err == nil && c.Validate() == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
