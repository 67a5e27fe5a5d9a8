package replay

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/anomalyd/anomalyd/internal/traffic"
)

// GenerateConfig is the traffic Generate writes.
type GenerateConfig struct {
	// Traffic is the generator's config: Events human requests, with
	// Bots on top.
	Traffic traffic.Config
	// Labels adds each request's "label" field (human or the bot
	// scenario), and "profile" and "group" where they apply, which the
	// pipeline ignores, to check detections against.
	Labels bool
}

// DefaultBots is the default of -bots: a few bots of every scenario, so
// that generated traffic has something to detect.
func DefaultBots() traffic.Bots { return traffic.EveryScenario(10) }

// DefaultGenerateConfig is traffic.DefaultConfig (1M human requests of
// 100k visitors over 20 sites, in 20 minutes) with DefaultBots, labelled.
func DefaultGenerateConfig() GenerateConfig {
	c := traffic.DefaultConfig()
	c.Bots = DefaultBots()
	return GenerateConfig{Traffic: c, Labels: true}
}

// RegisterFlags registers the generator's flags, with c's values as
// defaults (call DefaultGenerateConfig first).
func (c *GenerateConfig) RegisterFlags(fs *flag.FlagSet) {
	t := &c.Traffic
	fs.IntVar(&t.Sites, "sites", t.Sites, "number of sites (zones); a few get most visitors")
	fs.IntVar(&t.Visitors, "visitors", t.Visitors, "human visitor population; activity is Zipf-skewed, so not all of them appear")
	fs.IntVar(&t.Events, "events", t.Events, "number of human requests; bot requests come on top")
	fs.Var((*timeFlag)(&t.Start), "start", "`time` of the first request: RFC 3339, or now")
	fs.DurationVar(&t.Duration, "duration", t.Duration, "span of the requests, spread evenly from -start (event time, not how long generating takes)")
	fs.Uint64Var(&t.Seed, "seed", t.Seed, "random seed: the same flags and seed give the same traffic")
	fs.Float64Var(&t.Skew, "skew", t.Skew, "Zipf exponent of visitor activity, above 1; larger concentrates requests on fewer visitors")
	fs.Float64Var(&t.SkewOffset, "skew-offset", t.SkewOffset, "Zipf offset of visitor activity, at least 1; larger flattens the heaviest visitors")
	fs.Var(&t.Bots, "bots", "bot visitors per scenario, `n` for each of the four classic ones or scenario=n[,...] of "+traffic.ScenarioNames()+" (campaigns for the distributed ones); none for humans only")
	fs.Var(&t.Options, "options", "richer traffic: none (the classic shops and four bots), realistic (all of it), or parts of it, comma-separated: people (offices, carriers, privacy browsers, warm caches, power users, one-page readers, app users), sites (news, blog, forum, docs and app sites), automation (app pollers, feed readers, uptime monitors, API clients, crawlers, link previews, labelled human), spread (3% of visitors bots with bounded lifetimes, as history has them), campaigns (attacks spread over hundreds of residential addresses), surges (people who come at once for a page shared widely), fields (ASN, country, JA3, JA4)")
	fs.BoolVar(&c.Labels, "labels", c.Labels, "write each request's \"label\" field: human or the bot's scenario (the pipeline ignores it)")
}

// Validate reports the first unusable setting.
func (c *GenerateConfig) Validate() error {
	return c.Traffic.Validate()
}

// Generate writes cfg's traffic to w as JSON lines (Logpush field names, in
// time order), streaming, so that memory does not grow with Events. It
// returns the number of lines written.
func Generate(ctx context.Context, cfg GenerateConfig, w io.Writer) (int64, error) {
	g, err := traffic.New(cfg.Traffic)
	if err != nil {
		return 0, fmt.Errorf("generating traffic: %w", err)
	}
	jw := traffic.NewJSONLWriter(w, cfg.Labels)
	var n int64
	for r, ok := g.Next(); ok; r, ok = g.Next() {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return n, fmt.Errorf("generating traffic after %d events: %w", n, err)
			}
		}
		if err := jw.Write(&r); err != nil {
			return n, err
		}
		n++
	}
	return n, jw.Flush()
}

// timeFlag is a flag.Value of an RFC 3339 time, or "now".
type timeFlag time.Time

func (f *timeFlag) String() string { return time.Time(*f).Format(time.RFC3339Nano) }

func (f *timeFlag) Set(s string) error {
	if s == "now" {
		*f = timeFlag(time.Now().UTC().Truncate(time.Second))
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2026-01-01T00:00:00Z, or now: %w", err)
	}
	*f = timeFlag(t)
	return nil
}
