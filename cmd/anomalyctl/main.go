// Command anomalyctl is the operator's command: what the baseline service
// has learned of each site, a visitor's window explained feature by
// feature, a rebuild now, a Redis key decoded, candidate models compared
// with the live one. It talks to the services
// with their tokens, as they talk to each other.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/publisher"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/service/redisconfig"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
	"github.com/anomalyd/anomalyd/pkg/keys"
	"github.com/anomalyd/anomalyd/pkg/model"
	"github.com/anomalyd/anomalyd/pkg/records"
)

const usage = `Usage: anomalyctl VERB [flags] [arguments]

Verbs:
  sites                     the sites and their baselines: status, version, windows, built, per class
  baseline SITE             a site's baseline of a class: threshold, and every feature's histogram
  explain SITE VISITOR      a visitor's window now: each feature's value and contribution to its score
  rebuild SITE              build a site's baselines now (needs the admin token)
  key HEX                   decode a Redis key of the feature store
  detections                follow the detections as the publisher sends them to the edge
  shadow                    candidate models against the live one, per site: both, live only, candidate only
  policy check FILE         check a policy file: every fault, with its line and field

"anomalyctl VERB -h" explains a verb's flags. Every flag can also be set by
its ANOMALYD_* environment variable, as in the services; the command line
wins. -o json prints JSON for scripts. Exit status: 0 done; 1 failed (a
service refused or could not be reached, or the key is not one); 2 bad
flags or arguments.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// verb is one of anomalyctl's commands.
type verb struct {
	args string // the arguments, for the usage line
	help string
	// flags registers the verb's flags on fs, beyond -o.
	flags func(fs *flag.FlagSet, c *ctl)
	run   func(ctx context.Context, c *ctl, args []string) error
	nargs int
}

var verbs = map[string]verb{
	"sites": {"", "Lists every site of the baseline service's requests table, with the\nresult of its last build and, per traffic class, the baseline served.",
		apiFlags, sitesCmd, 0},
	"baseline": {"SITE", "Prints the baseline that judges SITE's traffic class (-class): which\nbaseline serves it, its threshold, and each feature's histogram, the\ndensity of every bin, as the detector scores it.",
		func(fs *flag.FlagSet, c *ctl) {
			apiFlags(fs, c)
			fs.StringVar(&c.class, "class", "browser", "traffic class: browser or api")
		}, baselineCmd, 1},
	"explain": {"SITE VISITOR", "Reads VISITOR's window (a keyed visitor id, 16 hex digits, as in score\nrecords) from the feature store in Redis, as the detector would score it\nat -at (event time; now by default), and scores it with the site's\nbaseline of the window's class: each feature's value and contribution.\nThe window flags must be the detector's.",
		func(fs *flag.FlagSet, c *ctl) {
			apiFlags(fs, c)
			c.redis.RegisterFlags(fs)
			c.window = features.DefaultWindow()
			c.window.RegisterFlags(fs)
			fs.StringVar(&c.at, "at", "", "event `time` (RFC 3339) of the window's newest request; empty: now")
		}, explainCmd, 2},
	"rebuild": {"SITE", "Builds SITE's baselines now, from the history in ClickHouse, and prints\nits status. Needs the baseline service's admin token (-admin-token, else\n-token).",
		func(fs *flag.FlagSet, c *ctl) {
			apiFlags(fs, c)
			fs.StringVar(&c.adminToken, "admin-token", "", "the baseline service's admin token; empty: -token")
		}, rebuildCmd, 1},
	"detections": {"", "Prints the detections of the detections topic as they come, one a line,\nuntil interrupted or -n: from now on, or from -since ago (what the edge\nacts on now is the detections of the last -detection-ttl).",
		func(fs *flag.FlagSet, c *ctl) {
			c.kafka.RegisterFlags(fs, service.TopicDetections)
			fs.DurationVar(&c.since, "since", 0, "also print the detections written this long ago or later; 0: only new ones")
			fs.IntVar(&c.n, "n", 0, "stop after this many detections; 0: until interrupted")
		}, detectionsCmd, 0},
	"shadow": {"", "Compares, per site, the visitors each candidate model (the policy's\nshadows) detected with those the live model detected over the -period\nbefore the newest score: both, live only, candidate only, with example\nvisitor ids, the most anomalous first. A visitor is detected by a model\nwith -min-hits of its scores by it above their threshold. Read from the\npublisher's scores table by the baseline service (its -scores-table).",
		func(fs *flag.FlagSet, c *ctl) {
			apiFlags(fs, c)
			fs.DurationVar(&c.period, "period", baseline.DefaultShadowPeriod, "event time compared, back from the newest score")
			fs.StringVar(&c.site, "site", "", "only this site; empty: every site")
			fs.IntVar(&c.minHits, "min-hits", baseline.DefaultShadowMinHits, "scores above the threshold that make a detection (the publisher's -min-hits)")
			fs.IntVar(&c.examples, "examples", baseline.DefaultShadowExamples, "example visitor ids of each kind of difference")
		}, shadowCmd, 0},
	"policy check": {"FILE", "Checks a policy file (docs/policy.example.yaml) as the services read it:\nexit status 0 and what it sets, or 1 and every fault, with its line and\nfield.",
		func(*flag.FlagSet, *ctl) {}, policyCheckCmd, 1},
	"key": {"HEX", "Decodes a Redis key of the feature store (pkg/keys), given in hex as\nredis-cli prints it with --no-raw (\\x escapes) or as plain hex digits.",
		func(*flag.FlagSet, *ctl) {}, keyCmd, 1},
}

// ctl is a verb's settings and output.
type ctl struct {
	out        io.Writer
	json       bool
	api        service.BaselineClientConfig
	token      string
	adminToken string
	class      string
	redis      redisconfig.Config
	window     features.Window
	at         string
	kafka      service.KafkaConfig
	since      time.Duration
	n          int
	site       string
	period     time.Duration
	minHits    int
	examples   int
}

// apiFlags registers the baseline service's address, trust and token.
func apiFlags(fs *flag.FlagSet, c *ctl) {
	c.api.RegisterFlags(fs)
	fs.StringVar(&c.token, "token", "", "the services' bearer token; prefer the environment variable")
}

// errUsage is a bad argument, reported with exit status 2.
var errUsage = errors.New("usage")

// run is the command with its environment, returning the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return service.ExitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return service.ExitOK
	}
	args = args[1:]
	if len(args) > 0 { // a verb of two words, "policy check"
		if _, ok := verbs[name+" "+args[0]]; ok {
			name, args = name+" "+args[0], args[1:]
		}
	}
	v, ok := verbs[name]
	if !ok {
		fmt.Fprintf(stderr, "anomalyctl: unknown verb %q\n\n%s", name, usage)
		return service.ExitUsage
	}
	c := &ctl{out: stdout}
	fs := flag.NewFlagSet("anomalyctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var output string
	fs.StringVar(&output, "o", "text", "output: text, or json for scripts")
	v.flags(fs, c)
	service.SetUsage(fs, v.help)
	if v.args != "" {
		fs.Usage = usageWithArgs(fs, v.args, v.help)
	}
	if err := service.ParseFlags(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return service.ExitOK
		}
		return service.ExitUsage
	}
	switch output {
	case "text":
	case "json":
		c.json = true
	default:
		fmt.Fprintf(stderr, "anomalyctl %s: -o must be text or json, got %q\n", name, output)
		return service.ExitUsage
	}
	if fs.NArg() != v.nargs {
		fmt.Fprintf(stderr, "anomalyctl %s: want %d argument(s) (%s), got %d\n", name, v.nargs, v.args, fs.NArg())
		return service.ExitUsage
	}
	if err := v.run(ctx, c, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "anomalyctl %s: %v\n", name, err)
		if errors.Is(err, errUsage) {
			return service.ExitUsage
		}
		return service.ExitError
	}
	return service.ExitOK
}

// usageWithArgs is service.SetUsage's, with the verb's arguments in the
// usage line.
func usageWithArgs(fs *flag.FlagSet, args, help string) func() {
	inner := fs.Usage
	return func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags] %s\n\n", fs.Name(), args)
		// The flags, as SetUsage prints them, without its own usage line.
		var b strings.Builder
		out := fs.Output()
		fs.SetOutput(&b)
		inner()
		fs.SetOutput(out)
		text := b.String()
		if i := strings.Index(text, "\n\n"); i >= 0 {
			text = text[i+2:]
		}
		fmt.Fprint(out, text)
	}
}

// client returns the baseline service's HTTP client and base URL.
func (c *ctl) client() (*http.Client, *url.URL, error) {
	if err := c.api.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	hc, err := c.api.Client()
	if err != nil {
		return nil, nil, err
	}
	hc.Timeout = time.Minute
	u, err := url.Parse(c.api.URL)
	return hc, u, err
}

// call sends a request to the baseline service and returns the body of a
// 200 answer; any other status is an error with the service's reason.
// path is unescaped: site names are host names.
func (c *ctl) call(ctx context.Context, method, path string, query url.Values, token string) ([]byte, http.Header, error) {
	hc, base, err := c.client()
	if err != nil {
		return nil, nil, err
	}
	u := base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return nil, nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return body, resp.Header, nil
}

// printJSON writes v as indented JSON.
func (c *ctl) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func sitesCmd(ctx context.Context, c *ctl, _ []string) error {
	body, _, err := c.call(ctx, http.MethodGet, "/v1/sites", nil, c.token)
	if err != nil {
		return err
	}
	var sites []baseline.SiteStatus
	if err := json.Unmarshal(body, &sites); err != nil {
		return fmt.Errorf("the sites' answer: %w", err)
	}
	if c.json {
		return c.printJSON(sites)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SITE\tCLASS\tSTATUS\tSERVED BY\tVERSION\tWINDOWS\tBUILT\tERROR")
	for _, s := range sites {
		if len(s.Classes) == 0 {
			fmt.Fprintf(w, "%s\t-\t%s\t-\t%s\t%s\t%s\t%s\n", s.Site, s.Status, dash(s.Version), count(s.Windows), when(s.Built), oneLine(s.Error))
		}
		for _, cl := range s.Classes {
			served := cl.ServedBy
			if served == "" && cl.Version != "" {
				served = "its own"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Site, cl.Class, cl.Status, dash(served), dash(cl.Version),
				count(cl.Windows), when(s.Built), oneLine(cl.Error))
		}
	}
	return w.Flush()
}

func shadowCmd(ctx context.Context, c *ctl, _ []string) error {
	if c.period <= 0 || c.minHits < 1 || c.examples < 0 {
		return fmt.Errorf("%w: -period must be positive, -min-hits at least 1 and -examples not negative, got %v, %d, %d", errUsage, c.period, c.minHits, c.examples)
	}
	q := url.Values{"period": {c.period.String()}, "min_hits": {strconv.Itoa(c.minHits)}, "examples": {strconv.Itoa(c.examples)}}
	if c.site != "" {
		q.Set("site", c.site)
	}
	body, _, err := c.call(ctx, http.MethodGet, "/v1/shadow", q, c.token)
	if err != nil {
		return err
	}
	var cmp baseline.ShadowComparison
	if err := json.Unmarshal(body, &cmp); err != nil {
		return fmt.Errorf("the comparison's answer: %w", err)
	}
	if c.json {
		return c.printJSON(cmp)
	}
	fmt.Fprintf(c.out, "scores from %s to %s, a detection at %d hits\n\n", cmp.From.Format(time.RFC3339), cmp.To.Format(time.RFC3339), cmp.MinHits)
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SITE\tMODEL\tLIVE\tBOTH\tLIVE ONLY\tCANDIDATE ONLY\tEXAMPLES")
	for _, s := range cmp.Sites {
		if len(s.Models) == 0 {
			fmt.Fprintf(w, "%s\t-\t%d\t-\t-\t-\t-\n", s.Site, s.Live)
		}
		for _, m := range s.Models {
			var ex []string
			for _, e := range []struct {
				what string
				ids  []string
			}{{"both", m.BothExamples}, {"live only", m.LiveOnlyExamples}, {"candidate only", m.CandidateOnlyExamples}} {
				if len(e.ids) > 0 {
					ex = append(ex, e.what+": "+strings.Join(e.ids, " "))
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Site, m.Model, s.Live, m.Both, m.LiveOnly, m.CandidateOnly, dash(strings.Join(ex, "; ")))
		}
	}
	return w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func count(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// fetchBaseline returns the baseline judging site's class, and which one
// serves it.
func (c *ctl) fetchBaseline(ctx context.Context, site string, class features.Class) (*model.Baseline, string, string, error) {
	body, h, err := c.call(ctx, http.MethodGet, "/v1/sites/"+site+"/baseline", url.Values{"class": {class.String()}}, c.token)
	if err != nil {
		return nil, "", "", err
	}
	var bl model.Baseline
	if err := bl.UnmarshalBinary(body); err != nil {
		return nil, "", "", fmt.Errorf("the baseline of %s: %w", site, err)
	}
	return &bl, h.Get(baseline.ServedHeader), strings.Trim(h.Get("ETag"), `"`), nil
}

// baselineView is a baseline as baseline prints it.
type baselineView struct {
	Site      string        `json:"site"`
	Class     string        `json:"class"`
	ServedBy  string        `json:"served_by"`
	Version   string        `json:"version"`
	Threshold float64       `json:"threshold"`
	Features  []featureView `json:"features"`
	Early     *earlyView    `json:"early,omitempty"`
}

type featureView struct {
	Feature string    `json:"feature"`
	Edges   []float64 `json:"edges"`   // bin i is [edges[i], edges[i+1])
	Density []float64 `json:"density"` // of each bin
}

type earlyView struct {
	Requests  int     `json:"requests"`
	Threshold float64 `json:"threshold"`
	Visits    uint64  `json:"visits"`
}

func baselineCmd(ctx context.Context, c *ctl, args []string) error {
	class, err := features.ParseClass(c.class)
	if err != nil {
		return fmt.Errorf("%w: -class: %w", errUsage, err)
	}
	bl, served, version, err := c.fetchBaseline(ctx, args[0], class)
	if err != nil {
		return err
	}
	v := baselineView{Site: args[0], Class: class.String(), ServedBy: served, Version: version, Threshold: bl.Model.Threshold()}
	names := bl.Model.Names()
	for j := range bl.Model.Features() {
		edges, density := bl.Model.Histogram(j)
		v.Features = append(v.Features, featureView{Feature: names[j], Edges: edges, Density: density})
	}
	if e := bl.Early; e != nil {
		v.Early = &earlyView{Requests: e.Requests, Threshold: e.Model.Threshold(), Visits: e.Starts.Visits()}
	}
	if c.json {
		return c.printJSON(v)
	}
	fmt.Fprintf(c.out, "%s %s: served by %s, version %s, threshold %.4g\n", v.Site, v.Class, v.ServedBy, v.Version, v.Threshold)
	if e := v.Early; e != nil {
		fmt.Fprintf(c.out, "visits' beginnings at %d requests: %d learned, threshold %.4g\n", e.Requests, e.Visits, e.Threshold)
	}
	for _, f := range v.Features {
		fmt.Fprintf(c.out, "\n%s\n", f.Feature)
		peak := 0.0
		for _, d := range f.Density {
			peak = max(peak, d)
		}
		for i, d := range f.Density {
			bar := 0
			if peak > 0 {
				bar = int(d / peak * 40)
			}
			fmt.Fprintf(c.out, "  [%9.4g, %9.4g)  %-40s %.4g\n", f.Edges[i], f.Edges[i+1], strings.Repeat("#", bar), d)
		}
	}
	return nil
}

func rebuildCmd(ctx context.Context, c *ctl, args []string) error {
	token := c.adminToken
	if token == "" {
		token = c.token
	}
	body, _, err := c.call(ctx, http.MethodPost, "/v1/sites/"+args[0]+"/rebuild", nil, token)
	if err != nil {
		return err
	}
	var st baseline.SiteStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("the rebuild's answer: %w", err)
	}
	if c.json {
		return c.printJSON(st)
	}
	fmt.Fprintf(c.out, "%s: %s, version %s, %d windows, built %s\n", st.Site, st.Status, dash(st.Version), st.Windows, when(st.Built))
	return nil
}

// keyView is a decoded key as key prints it.
type keyView struct {
	Kind    string `json:"kind"`
	Site    string `json:"site"` // 16 hex digits: keys.SiteID of the site's name
	Visitor string `json:"visitor"`
	Bucket  uint32 `json:"bucket"`
	Start   string `json:"start,omitempty"` // of the bucket, with the default window
}

func keyCmd(_ context.Context, c *ctl, args []string) error {
	raw, err := parseKey(args[0])
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	k, err := keys.Decode(raw)
	if err != nil {
		return err
	}
	v := keyView{Kind: k.Kind.String(), Site: fmt.Sprintf("%016x", k.Site), Visitor: records.VisitorID(k.Visitor), Bucket: k.Bucket}
	if k.Kind == keys.KindBucket {
		v.Start = features.DefaultWindow().Start(k.Bucket).UTC().Format(time.RFC3339)
	}
	if c.json {
		return c.printJSON(v)
	}
	fmt.Fprintf(c.out, "%s site %s visitor %s bucket %d", v.Kind, v.Site, v.Visitor, v.Bucket)
	if v.Start != "" {
		fmt.Fprintf(c.out, " (from %s with 1-minute buckets)", v.Start)
	}
	fmt.Fprintln(c.out)
	return nil
}

// parseKey reads a key as redis-cli prints it (\xNN escapes among
// printable bytes, quoted or not) or as plain hex digits.
func parseKey(s string) ([]byte, error) {
	s = strings.Trim(s, `"`)
	if !strings.Contains(s, `\`) {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("key %q: neither hex digits nor \\x escapes: %w", s, err)
		}
		return b, nil
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if i+4 > len(s) || s[i+1] != 'x' {
			return nil, fmt.Errorf("key %q: bad escape at byte %d", s, i)
		}
		b, err := hex.DecodeString(s[i+2 : i+4])
		if err != nil {
			return nil, fmt.Errorf("key %q: bad escape at byte %d: %w", s, i, err)
		}
		out = append(out, b[0])
		i += 3
	}
	return out, nil
}

// explainView is a visitor's window as explain prints it.
type explainView struct {
	Site      string                 `json:"site"`
	Visitor   string                 `json:"visitor"`
	Class     string                 `json:"class"`
	Window    [2]time.Time           `json:"window"` // [start, end)
	Requests  uint64                 `json:"requests"`
	Score     float64                `json:"score"`
	Threshold float64                `json:"threshold"`
	Version   string                 `json:"baseline_version"`
	Features  []records.Contribution `json:"features"`
}

func explainCmd(ctx context.Context, c *ctl, args []string) error {
	site, id := strings.ToLower(args[0]), args[1]
	visitor, err := records.ParseVisitorID(id)
	if err != nil {
		return fmt.Errorf("%w: VISITOR: %w", errUsage, err)
	}
	if err := c.window.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	at := time.Now()
	if c.at != "" {
		if at, err = time.Parse(time.RFC3339, c.at); err != nil {
			return fmt.Errorf("%w: -at: %w", errUsage, err)
		}
	}
	if err := c.redis.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	rdb, err := c.redis.Client()
	if err != nil {
		return err
	}
	defer rdb.Close()
	store, err := featurestore.NewRedisStore(rdb, c.window, featurestore.RedisOptions{})
	if err != nil {
		return err
	}
	newest := c.window.Bucket(at)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	agg, err := store.Window(rctx, keys.SiteID(site), visitor, newest)
	if err != nil {
		return err
	}
	n := agg.Counts[features.CountRequests]
	if n == 0 {
		return fmt.Errorf("no request of %s on %s in the window ending %s (-at, event time)", id, site, at.UTC().Format(time.RFC3339))
	}
	class := agg.Class()
	bl, _, version, err := c.fetchBaseline(ctx, site, class)
	if err != nil {
		return err
	}
	names := bl.Model.Names()
	set, err := setOf(names)
	if err != nil {
		return err
	}
	vec := agg.Vector(nil, set)
	contrib := make([]float64, len(vec))
	score, err := bl.Model.Explain(vec, contrib)
	if err != nil {
		return err
	}
	v := explainView{
		Site: site, Visitor: id, Class: class.String(), Requests: n, Score: score, Threshold: bl.Model.Threshold(), Version: version,
		Window: [2]time.Time{c.window.Start(c.window.First(newest)).UTC(), c.window.Start(newest).Add(c.window.Width).UTC()},
	}
	for j, x := range vec {
		v.Features = append(v.Features, records.Contribution{Feature: names[j], Value: x, Contribution: contrib[j]})
	}
	if c.json {
		return c.printJSON(v)
	}
	verdict := "below"
	if score > v.Threshold {
		verdict = "above"
	}
	fmt.Fprintf(c.out, "%s %s, %s class, %d requests in [%s, %s): score %.4g, %s the threshold %.4g (baseline %s)\n",
		site, id, v.Class, n, v.Window[0].Format(time.RFC3339), v.Window[1].Format(time.RFC3339), score, verdict, v.Threshold, version)
	if n < features.DefaultMinRequests {
		fmt.Fprintf(c.out, "(fewer requests than the default -min-requests, %d: the detector would not score this window)\n", features.DefaultMinRequests)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "FEATURE\tVALUE\tCONTRIBUTION\t")
	for _, f := range v.Features {
		fmt.Fprintf(w, "%s\t%.4g\t%+.2f\t\n", f.Feature, f.Value, f.Contribution)
	}
	return w.Flush()
}

// setOf is the feature set whose features a baseline was fitted on.
func setOf(names []string) (features.Set, error) {
	for _, s := range []features.Set{0, features.SetFingerprint} {
		if slices.Equal(s.Names(), names) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("the baseline's features %v are no feature set of this anomalyctl", names)
}

func detectionsCmd(ctx context.Context, c *ctl, _ []string) error {
	if err := c.kafka.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if c.since < 0 || c.n < 0 {
		return fmt.Errorf("%w: -since and -n must not be negative", errUsage)
	}
	dialer, transport, err := c.kafka.Clients()
	if err != nil {
		return err
	}
	transport.CloseIdleConnections() // only the readers' dialer is used
	var from time.Time
	if c.since > 0 {
		from = time.Now().Add(-c.since)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := 0
	var werr error
	h := publisher.TopicHistory{Brokers: c.kafka.Brokers, Topic: c.kafka.DetectionsTopic, Dialer: dialer}
	err = h.Follow(ctx, from, func(d *records.Detection) {
		if werr != nil {
			return
		}
		if c.json {
			werr = json.NewEncoder(c.out).Encode(d)
		} else {
			werr = printDetection(c.out, d)
		}
		if seen++; werr != nil || seen == c.n {
			cancel()
		}
	})
	if werr != nil {
		return werr
	}
	return err
}

// printDetection writes d on one line: when, where, who, how far out, why.
func printDetection(w io.Writer, d *records.Detection) error {
	var why []string
	for _, t := range d.Top {
		why = append(why, fmt.Sprintf("%s=%.3g (%+.1f)", t.Feature, t.Value, t.Contribution))
	}
	if d.Revoked != "" {
		_, err := fmt.Fprintf(w, "%s %s %s revoked: %s\n", d.DetectedAt.UTC().Format(time.RFC3339), d.Site, d.Visitor, d.Revoked)
		return err
	}
	group := ""
	if d.Group != "" {
		group = fmt.Sprintf(" group %s of %d", d.Group, d.GroupSize)
	}
	_, err := fmt.Fprintf(w, "%s %s %s %s %.1f > %.1f%s until %s: %s\n", d.DetectedAt.UTC().Format(time.RFC3339), d.Site, d.Visitor, dash(d.Class),
		d.Score, d.Threshold, group, d.ExpiresAt.UTC().Format(time.RFC3339), strings.Join(why, ", "))
	return err
}

// policyView is a policy check's result as policy check prints it.
type policyView struct {
	File    string   `json:"file"`
	Valid   bool     `json:"valid"`
	Version string   `json:"version,omitempty"`
	Sites   int      `json:"sites"`
	Off     int      `json:"off"`
	Allow   int      `json:"allow_entries"`
	Faults  []string `json:"faults,omitempty"`
}

// errFaults is a policy file with faults, which policyCmd has printed.
var errFaults = errors.New("the policy has faults")

func policyCheckCmd(_ context.Context, c *ctl, args []string) error {
	v := policyView{File: args[0]}
	p, err := policy.Load(args[0])
	var perr *policy.Error
	switch {
	case errors.As(err, &perr):
		v.Faults = perr.Faults
	case err != nil:
		return err
	default:
		v.Valid, v.Version = true, p.Version()
		c := p.Counts()
		v.Sites, v.Off, v.Allow = c.Sites, c.Off, c.Allow
	}
	if c.json {
		if err := c.printJSON(v); err != nil {
			return err
		}
	} else if v.Valid {
		fmt.Fprintf(c.out, "%s: valid, version %s: %d sites (%d off), %d allow-list entries\n", v.File, v.Version, v.Sites, v.Off, v.Allow)
	} else {
		for _, f := range v.Faults {
			fmt.Fprintf(c.out, "%s: %s\n", v.File, f)
		}
	}
	if !v.Valid {
		return fmt.Errorf("%w (%d)", errFaults, len(v.Faults))
	}
	return nil
}
