package publisher

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	p := mustPolicy(t, `# anomalyd publisher policy

shop.example   off          # a sale: too many unusual humans
Blog.Example	allow	00000000DEADBEEF 0123456789abcdef
blog.example allow fedcba9876543210   # monitoring
blog.example allow 0123456789abcdef
   # an indented comment
`)
	tests := []struct {
		site    string
		visitor uint64
		off     bool
		allowed bool
	}{
		{"shop.example", 1, true, false},
		{"blog.example", 0xdeadbeef, false, true},
		{"blog.example", 0x0123456789abcdef, false, true},
		{"blog.example", 0xfedcba9876543210, false, true},
		{"blog.example", 0xdeadbeee, false, false},
		{"shop.example", 0xdeadbeef, true, false},
		{"other.example", 0xdeadbeef, false, false},
	}
	for _, tt := range tests {
		if got := p.SiteOff(tt.site); got != tt.off {
			t.Errorf("SiteOff(%s) = %v, want %v", tt.site, got, tt.off)
		}
		if got := p.Allowed(tt.site, tt.visitor); got != tt.allowed {
			t.Errorf("Allowed(%s, %x) = %v, want %v", tt.site, tt.visitor, got, tt.allowed)
		}
	}
	if p.SitesOff() != 1 || p.AllowedVisitors() != 3 {
		t.Errorf("%d sites off, %d allowed visitors; want 1 and 3", p.SitesOff(), p.AllowedVisitors())
	}
}

func TestParsePolicyEmpty(t *testing.T) {
	for _, text := range []string{"", "\n\n", "# nothing yet\n"} {
		p := mustPolicy(t, text)
		if p.SiteOff("a.example") || p.Allowed("a.example", 1) || p.SitesOff() != 0 || p.AllowedVisitors() != 0 {
			t.Errorf("%q: not empty", text)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.SiteOff("a") || nilPolicy.Allowed("a", 1) || nilPolicy.SitesOff() != 0 || nilPolicy.AllowedVisitors() != 0 {
		t.Error("a nil policy suppresses something")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown action", "a.example on\n", `test.policy:1: field 2 (action): "on": want "off" or "allow"`},
		{"missing action", "# c\n\na.example   # c\n", `test.policy:3: field 2 (action): missing`},
		{"off with more", "a.example off 0000000000000001\n", `test.policy:1: field 3 (end of line): "0000000000000001" after off`},
		{"allow without visitor", "a.example off\na.example allow # who?\n", `test.policy:2: field 3 (visitor id): missing`},
		{"short visitor", "a.example allow deadbeef\n", `test.policy:1: field 3 (visitor id): visitor id "deadbeef": want 16 hex digits`},
		{"bad visitor later on the line", "a.example allow 0000000000000001 000000000000000g\n", `test.policy:1: field 4 (visitor id): visitor id "000000000000000g"`},
		{"line too long", "a.example allow " + strings.Repeat("0000000000000001 ", maxPolicyLine/17+1) + "\n", `test.policy:1: line longer than`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy(strings.NewReader(tt.text), "test.policy")
			if err == nil {
				t.Fatalf("parsed: %+v", p)
			}
			if !errors.Is(err, ErrPolicy) {
				t.Errorf("error %v does not wrap ErrPolicy", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n %q\nwant it to contain\n %q", err, tt.want)
			}
		})
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy")
	if err := os.WriteFile(path, []byte("a.example off\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(path)
	if err != nil || !p.SiteOff("a.example") {
		t.Fatalf("LoadPolicy: %v, %v", p, err)
	}
	if _, err := LoadPolicy(filepath.Join(dir, "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
	if err := os.WriteFile(path, []byte("a.example off\nb.example of\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path); err == nil || !strings.Contains(err.Error(), path+":2: field 2 (action)") {
		t.Errorf("bad file: %v, want the path and line", err)
	}
}
