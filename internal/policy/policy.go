// Package policy is the operators' control of detection, one YAML file
// that every service reads: defaults and per-site overrides (a site off or
// simulated, its threshold, contamination, -min-requests and -min-hits)
// and allow-lists (by IP, CIDR, ASN, user-agent pattern, path prefix or
// visitor id, each entry with an optional expiry and a comment). Its
// fields are documented, with an example, in docs/policy.example.yaml.
//
// Who applies what: the detector scores no request of a site that is off
// and none that an allow-list entry matches, and takes a site's threshold
// and -min-requests; the publisher publishes nothing of a site that is off
// or simulated, nor an allowed visitor, and takes a site's -min-hits; the
// baseline service builds a site's baselines with its contamination and
// fits the candidates next to them, which the detector scores too. A
// Policy is immutable once parsed; a nil *Policy is the empty policy.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/model"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// ErrInvalid is a policy file that cannot be used; the error names the
// file, the line and the field.
var ErrInvalid = errors.New("invalid policy")

// MaxSize bounds a policy file, so that a wrong file does not eat memory.
const MaxSize = 16 << 20

// Policy is a parsed policy file.
type Policy struct {
	defaults Settings
	sites    map[string]*Site
	shadows  []Shadow
	version  string
}

// file is the YAML document.
type file struct {
	Defaults Settings         `yaml:"defaults"`
	Sites    map[string]*Site `yaml:"sites"`
	Shadows  []Shadow         `yaml:"shadows"`
}

// Shadow is a candidate model: the baseline service fits it to the same
// windows as the live baselines, with these settings in place of its
// flags (zero values keep them); the detector records its scores under
// its name; the publisher stores them and never publishes them. Promoting
// a candidate is setting the baseline service's flags to its settings.
type Shadow struct {
	// Name names its score records and metrics: lower-case letters,
	// digits, '-' and '_', not "live".
	Name string `yaml:"name"`
	// Bins, Alpha and Contamination replace -bins, -alpha and
	// -contamination; Trim and ThresholdSpread replace -trim and
	// -threshold-spread (a negative value turns either off, as 0 does on
	// the flag).
	Bins            int     `yaml:"bins"`
	Alpha           float64 `yaml:"alpha"`
	Contamination   float64 `yaml:"contamination"`
	Trim            float64 `yaml:"trim"`
	ThresholdSpread float64 `yaml:"threshold_spread"`
	// Features are the features it is fitted on and scores, some of the
	// detector's (their names as in score records); none: all of them.
	Features []string `yaml:"features"`
	// OneClass fits it to the windows of every traffic class together and
	// judges every window with that one model, as before classes.
	OneClass bool `yaml:"one_class"`
}

// shadowName is what a shadow's name may be.
var shadowName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// maxShadows bounds the candidates: each costs a fit per class per build
// and a score per window scored.
const maxShadows = 8

// checkShadows reports the faults of the shadows section, each with its
// index and field.
func checkShadows(shadows []Shadow, known []string) []settingFault {
	var out []settingFault
	if len(shadows) > maxShadows {
		out = append(out, settingFault{"", fmt.Sprintf("%d candidates, at most %d", len(shadows), maxShadows)})
	}
	seen := make(map[string]bool)
	for i, sh := range shadows {
		at := func(field, format string, args ...any) {
			out = append(out, settingFault{strconv.Itoa(i) + "." + field, fmt.Sprintf(format, args...)})
		}
		switch {
		case sh.Name == "":
			at("name", "missing")
		case len(sh.Name) > model.MaxShadowName || !shadowName.MatchString(sh.Name):
			at("name", "%q: lower-case letters, digits, '-' and '_', at most %d", sh.Name, model.MaxShadowName)
		case sh.Name == records.LiveModel:
			at("name", "%q is the live model's", sh.Name)
		case seen[sh.Name]:
			at("name", "%q is named twice", sh.Name)
		}
		seen[sh.Name] = true
		if sh.Bins < 0 || sh.Bins > 1000 {
			at("bins", "%d is not in [0, 1000]", sh.Bins)
		}
		if !(sh.Alpha >= 0 && sh.Alpha < 1) {
			at("alpha", "%v is not in [0, 1)", sh.Alpha)
		}
		if !(sh.Contamination >= 0 && sh.Contamination < 0.5) {
			at("contamination", "%v is not in [0, 0.5)", sh.Contamination)
		}
		if !(sh.Trim <= 0.5) {
			at("trim", "%v is above 0.5", sh.Trim)
		}
		if math.IsNaN(sh.ThresholdSpread) || math.IsInf(sh.ThresholdSpread, 0) {
			at("threshold_spread", "%v is not a number", sh.ThresholdSpread)
		}
		for j, f := range sh.Features {
			switch {
			case !slices.Contains(known, f):
				at("features."+strconv.Itoa(j), "%q is no feature (want some of %s)", f, strings.Join(known, ", "))
			case slices.Index(sh.Features, f) != j:
				at("features."+strconv.Itoa(j), "%q is named twice", f)
			}
		}
	}
	return out
}

// Settings are what defaults and a site may set; zero values leave the
// services' flags in force.
type Settings struct {
	// Threshold replaces the baselines' thresholds (the detector's
	// -threshold).
	Threshold float64 `yaml:"threshold"`
	// Contamination is the share of a site's history above the threshold
	// when its baselines are built (the baseline service's
	// -contamination).
	Contamination float64 `yaml:"contamination"`
	// MinRequests is the fewest requests a window needs to be scored (the
	// detector's -min-requests); the baselines learn from windows of the
	// service's -min-requests, so only a higher value is of use.
	MinRequests int `yaml:"min_requests"`
	// MinHits is how many scores above the threshold within the TTL
	// publish a visitor (the publisher's -min-hits).
	MinHits int `yaml:"min_hits"`
	// APIPaths are more paths of API and feed requests, in the patterns
	// of the services' -api-paths (a prefix such as /rest, or a suffix
	// such as *.csv), on top of theirs: traffic-class rules (see
	// features.ClassRules). The detector and the baseline service's
	// ingest classify requests with them from the reload on.
	APIPaths []string `yaml:"api_paths"`
	// Allow are the requests and visitors never detected.
	Allow []Allow `yaml:"allow"`
}

// Site is one site's policy: Settings over the defaults, and its switches.
type Site struct {
	Settings `yaml:",inline"`
	// Off: the site is not scored at all, and nothing of it published.
	Off bool `yaml:"off"`
	// Simulate: the site is scored and its scores recorded, but nothing
	// of it is published.
	Simulate bool `yaml:"simulate"`
}

// Allow is an allow-list entry. It matches a request when every field it
// sets matches (so "user_agent" with "asn" is a crawler from its owner's
// network only), until Expires.
type Allow struct {
	IP         netip.Addr
	CIDR       netip.Prefix
	ASN        uint32
	UserAgent  *regexp.Regexp // RE2, unanchored
	PathPrefix string
	Visitor    uint64 // keyed visitor id; 0: any
	HasVisitor bool
	Expires    time.Time // zero: never
	Comment    string
}

// allowYAML is an entry as written.
type allowYAML struct {
	IP         string `yaml:"ip"`
	CIDR       string `yaml:"cidr"`
	ASN        uint32 `yaml:"asn"`
	UserAgent  string `yaml:"user_agent"`
	PathPrefix string `yaml:"path_prefix"`
	Visitor    string `yaml:"visitor"`
	Expires    string `yaml:"expires"`
	Comment    string `yaml:"comment"`
}

// allowFields are the keys of an entry: node decoding, unlike the file's
// decoder, does not refuse unknown ones.
var allowFields = []string{"ip", "cidr", "asn", "user_agent", "path_prefix", "visitor", "expires", "comment"}

// UnmarshalYAML reads and checks an entry, naming its line in errors.
func (a *Allow) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !slices.Contains(allowFields, k.Value) {
				return fault(fmt.Sprintf("line %d: allow entry: unknown field %q (want one of %s)", k.Line, k.Value, strings.Join(allowFields, ", ")))
			}
		}
	}
	var y allowYAML
	if err := n.Decode(&y); err != nil {
		return err
	}
	fail := func(field, format string, args ...any) error {
		line := n.Line
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == field {
				line = n.Content[i].Line
			}
		}
		return fault(fmt.Sprintf("line %d: allow entry, field %s: %s", line, field, fmt.Sprintf(format, args...)))
	}
	out := Allow{ASN: y.ASN, PathPrefix: y.PathPrefix, Comment: y.Comment}
	var err error
	if y.Expires != "" {
		if out.Expires, err = time.Parse(time.RFC3339, y.Expires); err != nil {
			return fail("expires", "%q is not an RFC 3339 time (2027-01-01T00:00:00Z)", y.Expires)
		}
	}
	if y.IP != "" {
		if out.IP, err = netip.ParseAddr(y.IP); err != nil {
			return fail("ip", "%v", err)
		}
		out.IP = out.IP.Unmap()
	}
	if y.CIDR != "" {
		if out.CIDR, err = netip.ParsePrefix(y.CIDR); err != nil {
			return fail("cidr", "%v", err)
		}
		if out.CIDR.Addr().Is4In6() {
			return fail("cidr", "%q: write an IPv4 range as IPv4", y.CIDR)
		}
		out.CIDR = out.CIDR.Masked()
	}
	if y.UserAgent != "" {
		if out.UserAgent, err = regexp.Compile(y.UserAgent); err != nil {
			return fail("user_agent", "%v", err)
		}
	}
	if y.PathPrefix != "" && !strings.HasPrefix(y.PathPrefix, "/") {
		return fail("path_prefix", "%q does not start with /", y.PathPrefix)
	}
	if y.Visitor != "" {
		if out.Visitor, err = records.ParseVisitorID(y.Visitor); err != nil {
			return fail("visitor", "%v", err)
		}
		out.HasVisitor = true
	}
	if !out.IP.IsValid() && !out.CIDR.IsValid() && out.ASN == 0 && out.UserAgent == nil && out.PathPrefix == "" && !out.HasVisitor {
		return fault(fmt.Sprintf("line %d: allow entry: matches everything; set ip, cidr, asn, user_agent, path_prefix or visitor", n.Line))
	}
	*a = out
	return nil
}

// fault is an entry's fault as the decoder collects them: it goes on, and
// reports every fault of the file together.
func fault(msg string) error { return &yaml.TypeError{Errors: []string{msg}} }

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the policy %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse parses a policy file's contents; name begins its errors, which
// wrap ErrInvalid and name the line and the field.
func Parse(data []byte, name string) (*Policy, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: name, Faults: []string{fmt.Sprintf("larger than %d bytes", MaxSize)}}
	}
	var f file
	perr := &Error{File: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) { // not YAML: nothing more to check
			return nil, &Error{File: name, Faults: []string{strings.TrimPrefix(err.Error(), "yaml: ")}}
		}
		// Every field that would not decode; the rest did, and is
		// checked too.
		perr.Faults = append(perr.Faults, te.Errors...)
	}
	// The faults found after decoding name the line of their field, found
	// in the document's tree.
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it is YAML
	fault := func(path []string, format string, args ...any) {
		perr.Faults = append(perr.Faults, fmt.Sprintf("line %d: %s: %s", lineOf(&root, path), strings.Join(path, "."), fmt.Sprintf(format, args...)))
	}
	p := &Policy{defaults: f.Defaults, sites: make(map[string]*Site, len(f.Sites))}
	names := make(map[string]string, len(f.Sites)) // the name each key was given
	for _, c := range checkSettings(&f.Defaults) {
		fault(append([]string{"defaults"}, strings.Split(c.field, ".")...), "%s", c.msg)
	}
	for _, site := range slices.Sorted(maps.Keys(f.Sites)) { // the same file, the same faults in the same order
		s := f.Sites[site]
		key := strings.ToLower(site)
		if s == nil {
			s = &Site{}
		}
		for _, c := range checkSettings(&s.Settings) {
			fault(append([]string{"sites", site}, strings.Split(c.field, ".")...), "%s", c.msg)
		}
		if s.Off && s.Simulate {
			fault([]string{"sites", site, "simulate"}, "with off: a site off is not scored, so there is nothing to simulate")
		}
		if other, dup := names[key]; dup {
			if lineOf(&root, []string{"sites", other}) > lineOf(&root, []string{"sites", site}) {
				site, other = other, site // the later one is at fault
			}
			fault([]string{"sites", site}, "the site is named twice, as %s too (site names are matched in lower case)", other)
		}
		names[key] = site
		p.sites[key] = s
	}
	var every []string
	for _, f := range features.Schema() {
		every = append(every, f.Name)
	}
	for _, c := range checkShadows(f.Shadows, every) {
		path := []string{"shadows"}
		if c.field != "" {
			path = append(path, strings.Split(c.field, ".")...)
		}
		fault(path, "%s", c.msg)
	}
	p.shadows = f.Shadows
	if len(perr.Faults) > 0 {
		return nil, perr
	}
	sum := sha256.Sum256(data)
	p.version = hex.EncodeToString(sum[:8])
	return p, nil
}

// Error is a policy file that cannot be used: every fault found, each
// naming its line and field. It matches ErrInvalid with errors.Is.
type Error struct {
	File   string
	Faults []string
}

// Error is the faults, one a line after the first, each after the file.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s", ErrInvalid, e.File)
	if len(e.Faults) > 1 {
		fmt.Fprintf(&b, ": %d faults", len(e.Faults))
		for _, f := range e.Faults {
			fmt.Fprintf(&b, "\n  %s: %s", e.File, f)
		}
		return b.String()
	}
	for _, f := range e.Faults {
		fmt.Fprintf(&b, ": %s", f)
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// settingFault is a setting out of range: its field and why.
type settingFault struct{ field, msg string }

// checkSettings reports the settings out of range.
func checkSettings(s *Settings) []settingFault {
	var out []settingFault
	if s.Threshold < 0 {
		out = append(out, settingFault{"threshold", fmt.Sprintf("%v is below 0", s.Threshold)})
	}
	if !(s.Contamination >= 0 && s.Contamination < 0.5) {
		out = append(out, settingFault{"contamination", fmt.Sprintf("%v is not in [0, 0.5)", s.Contamination)})
	}
	if s.MinRequests < 0 {
		out = append(out, settingFault{"min_requests", fmt.Sprintf("%d is below 0", s.MinRequests)})
	}
	if s.MinHits < 0 {
		out = append(out, settingFault{"min_hits", fmt.Sprintf("%d is below 0", s.MinHits)})
	}
	for i, pat := range s.APIPaths {
		if _, err := features.ClassRules(pat).Classifier(); err != nil || strings.ContainsAny(pat, ",=") {
			out = append(out, settingFault{"api_paths." + strconv.Itoa(i), fmt.Sprintf("%q: want a path prefix such as /rest or a suffix such as *.csv", pat)})
		}
	}
	return out
}

// lineOf is the line of the key at path in a YAML document, or of the
// deepest key of it found; 0 if none is.
func lineOf(doc *yaml.Node, path []string) int {
	n, line := doc, 0
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			n, line = n.Content[i], n.Content[i].Line
			continue
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

// Version is a digest of the file the policy was parsed from (16 hex
// digits); "" for the nil policy.
func (p *Policy) Version() string {
	if p == nil {
		return ""
	}
	return p.version
}

// Shadows are the candidate models, in the file's order; a shadow's
// features are checked against every feature of every set, so the
// baseline service leaves out a candidate naming one its detectors do not
// compute.
func (p *Policy) Shadows() []Shadow {
	if p == nil {
		return nil
	}
	return slices.Clone(p.shadows)
}

// site returns site's policy, nil if the file does not name it.
func (p *Policy) site(site string) *Site {
	if p == nil {
		return nil
	}
	return p.sites[site]
}

// Off reports whether site is switched off.
func (p *Policy) Off(site string) bool { s := p.site(site); return s != nil && s.Off }

// Simulate reports whether site is scored but never published.
func (p *Policy) Simulate(site string) bool { s := p.site(site); return s != nil && s.Simulate }

// setting returns site's value of a setting, else the default's; 0 if
// neither sets it.
func setting[T int | float64](p *Policy, site string, get func(*Settings) T) T {
	if p == nil {
		return 0
	}
	if s := p.sites[site]; s != nil && get(&s.Settings) != 0 {
		return get(&s.Settings)
	}
	return get(&p.defaults)
}

// Threshold is site's threshold override, 0 for none.
func (p *Policy) Threshold(site string) float64 {
	return setting(p, site, func(s *Settings) float64 { return s.Threshold })
}

// Contamination is site's contamination override, 0 for none.
func (p *Policy) Contamination(site string) float64 {
	return setting(p, site, func(s *Settings) float64 { return s.Contamination })
}

// MinRequests is site's -min-requests override, 0 for none.
func (p *Policy) MinRequests(site string) int {
	return setting(p, site, func(s *Settings) int { return s.MinRequests })
}

// MinHits is site's -min-hits override, 0 for none.
func (p *Policy) MinHits(site string) int {
	return setting(p, site, func(s *Settings) int { return s.MinHits })
}

// ClassRules are base, the services' -api-paths, with the API paths of
// the policy: the defaults' for every site, and each site's for it.
func (p *Policy) ClassRules(base features.ClassRules) features.ClassRules {
	if p == nil {
		return base
	}
	rules := []string{string(base)}
	rules = append(rules, p.defaults.APIPaths...)
	for _, site := range slices.Sorted(maps.Keys(p.sites)) {
		for _, pat := range p.sites[site].APIPaths {
			rules = append(rules, site+"="+pat)
		}
	}
	return features.ClassRules(strings.Trim(strings.Join(rules, ","), ","))
}

// Classes keeps the classifier of the policy in force: a service that
// classifies requests asks it for one at every batch, and it builds one
// only when the policy changed.
type Classes struct {
	base features.ClassRules
	pol  *Policy
	c    *features.Classifier
}

// NewClasses returns the classifier cache of the services' -api-paths.
func NewClasses(base features.ClassRules) *Classes { return &Classes{base: base} }

// Of returns the classifier of base and p's API paths.
func (cl *Classes) Of(p *Policy) *features.Classifier {
	if cl.c != nil && p == cl.pol {
		return cl.c
	}
	c, err := p.ClassRules(cl.base).Classifier()
	if err != nil { // Parse checked every pattern, and the flag its own
		c, _ = cl.base.Classifier()
	}
	cl.pol, cl.c = p, c
	return c
}

// Request is what an allow-list entry matches a request on.
type Request struct {
	IP        netip.Addr
	ASN       uint32
	UserAgent []byte
	Path      []byte
	Visitor   uint64 // keyed visitor id
}

// AllowsRequest reports whether an entry of site's allow-list, or of the
// defaults', in force at now matches r.
func (p *Policy) AllowsRequest(site string, r *Request, now time.Time) bool {
	_, allowed, _ := p.Screen(site, r, now)
	return allowed
}

// Screen reports, with one look at site, whether it is off and, if not,
// whether an allow-list entry in force at now matches r, and whether the
// entry says who the visitor is rather than what it asks (it sets no
// path_prefix): what the detector asks of every request. The detector
// tells the publisher of visitors allowed for who they are, whose live
// detections are then revoked.
func (p *Policy) Screen(site string, r *Request, now time.Time) (off, allowed, who bool) {
	if p == nil {
		return false, false, false
	}
	s := p.sites[site]
	if s != nil && s.Off {
		return true, false, false
	}
	var own *Allow
	if s != nil {
		if own = firstMatch(s.Allow, r, now); own != nil && own.PathPrefix == "" {
			return false, true, true
		}
	}
	if a := firstMatch(p.defaults.Allow, r, now); a != nil {
		return false, true, a.PathPrefix == ""
	}
	return false, own != nil, false
}

// AllowsVisitor reports whether an entry in force at now allows visitor on
// site by its id alone: the publisher, which sees no request, applies
// these; the detector applies every entry to the requests.
func (p *Policy) AllowsVisitor(site string, visitor uint64, now time.Time) bool {
	if p == nil {
		return false
	}
	check := func(list []Allow) bool {
		for i := range list {
			a := &list[i]
			if a.HasVisitor && a.Visitor == visitor && a.onlyVisitor() && a.inForce(now) {
				return true
			}
		}
		return false
	}
	if s := p.sites[site]; s != nil && check(s.Allow) {
		return true
	}
	return check(p.defaults.Allow)
}

func (a *Allow) onlyVisitor() bool {
	return !a.IP.IsValid() && !a.CIDR.IsValid() && a.ASN == 0 && a.UserAgent == nil && a.PathPrefix == ""
}

func (a *Allow) inForce(now time.Time) bool { return a.Expires.IsZero() || now.Before(a.Expires) }

// firstMatch is the first entry of list in force at now that matches r
// and says who the visitor is, else the first that matches r; nil if none
// does.
func firstMatch(list []Allow, r *Request, now time.Time) *Allow {
	var first *Allow
	for i := range list {
		if list[i].matches(r, now) {
			if list[i].PathPrefix == "" {
				return &list[i]
			}
			if first == nil {
				first = &list[i]
			}
		}
	}
	return first
}

func (a *Allow) matches(r *Request, now time.Time) bool {
	switch {
	case !a.inForce(now):
		return false
	case a.IP.IsValid() && a.IP != r.IP:
		return false
	case a.CIDR.IsValid() && !a.CIDR.Contains(r.IP):
		return false
	case a.ASN != 0 && a.ASN != r.ASN:
		return false
	case a.PathPrefix != "" && !bytes.HasPrefix(r.Path, []byte(a.PathPrefix)):
		return false
	case a.HasVisitor && a.Visitor != r.Visitor:
		return false
	case a.UserAgent != nil && !a.UserAgent.Match(r.UserAgent):
		return false
	}
	return true
}

// Counts are what a policy holds: the sites it names, those off and
// simulated, and its allow-list entries, expired or not.
type Counts struct {
	Sites, Off, Simulated, Allow int
}

// Counts counts what p holds.
func (p *Policy) Counts() Counts {
	if p == nil {
		return Counts{}
	}
	c := Counts{Sites: len(p.sites), Allow: len(p.defaults.Allow)}
	for _, s := range p.sites {
		if s.Off {
			c.Off++
		}
		if s.Simulate {
			c.Simulated++
		}
		c.Allow += len(s.Allow)
	}
	return c
}
