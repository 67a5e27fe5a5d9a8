package publisher

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// ErrPolicy is a policy file that cannot be used; the error text names the
// file, the line and the field.
var ErrPolicy = errors.New("invalid policy")

// maxPolicyLine bounds one line of a policy file, so that a long allow-list
// line works and a binary file given by mistake does not eat memory.
const maxPolicyLine = 1 << 20

// Policy is the operators' per-site overrides of detection: sites whose
// detections are switched off, and per site the visitors never published
// (known good crawlers, monitoring, the site's own tools). Scores are still
// stored for all of them. A nil *Policy allows everything.
//
// A policy file is UTF-8 text, one rule per line; '#' starts a comment,
// blank lines are ignored and fields are separated by spaces or tabs:
//
//	# site                 action  visitor ids (16 hex digits)
//	shop.example           off
//	blog.example           allow   00000000deadbeef 0123456789abcdef
//	blog.example           allow   fedcba9876543210
//
// "off" publishes no detection for the site; "allow" lists visitors never
// published for the site, any number per line and on any number of lines.
// Site names are matched case-insensitively, as score records carry them in
// lower case. A site that no rule names is published normally.
type Policy struct {
	off   map[string]bool
	allow map[siteVisitor]struct{}
}

type siteVisitor struct {
	site    string
	visitor uint64
}

// SiteOff reports whether site's detections are switched off.
func (p *Policy) SiteOff(site string) bool {
	return p != nil && p.off[site]
}

// Allowed reports whether visitor is on site's allow-list.
func (p *Policy) Allowed(site string, visitor uint64) bool {
	if p == nil || len(p.allow) == 0 {
		return false
	}
	_, ok := p.allow[siteVisitor{site, visitor}]
	return ok
}

// SitesOff is the number of sites switched off.
func (p *Policy) SitesOff() int {
	if p == nil {
		return 0
	}
	return len(p.off)
}

// AllowedVisitors is the number of (site, visitor) pairs on allow-lists.
func (p *Policy) AllowedVisitors() int {
	if p == nil {
		return 0
	}
	return len(p.allow)
}

// LoadPolicy reads and parses the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	return ParsePolicy(f, path)
}

// ParsePolicy parses a policy (see Policy for the format) from r; name is
// the file name errors begin with. The first error wraps ErrPolicy and
// reads "name:line: field N (what): problem".
func ParsePolicy(r io.Reader, name string) (*Policy, error) {
	p := &Policy{off: make(map[string]bool), allow: make(map[siteVisitor]struct{})}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxPolicyLine)
	line := 0
	fail := func(field int, what, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: field %d (%s): %s", ErrPolicy, name, line, field, what, fmt.Sprintf(format, args...))
	}
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		site := strings.ToLower(fields[0])
		if len(fields) < 2 {
			return nil, fail(2, "action", `missing: want "off" or "allow"`)
		}
		switch fields[1] {
		case "off":
			if len(fields) > 2 {
				return nil, fail(3, "end of line", "%q after off, which takes nothing more", fields[2])
			}
			p.off[site] = true
		case "allow":
			if len(fields) < 3 {
				return nil, fail(3, "visitor id", "missing: allow needs at least one visitor id")
			}
			for i, f := range fields[2:] {
				v, err := records.ParseVisitorID(f)
				if err != nil {
					return nil, fail(3+i, "visitor id", "%v", err)
				}
				p.allow[siteVisitor{site, v}] = struct{}{}
			}
		default:
			return nil, fail(2, "action", `%q: want "off" or "allow"`, fields[1])
		}
	}
	if err := sc.Err(); err != nil {
		line++ // the line that could not be read
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: %s:%d: line longer than %d bytes; split the allow-list over several lines", ErrPolicy, name, line, maxPolicyLine)
		}
		return nil, fmt.Errorf("reading policy %s: %w", name, err)
	}
	return p, nil
}
