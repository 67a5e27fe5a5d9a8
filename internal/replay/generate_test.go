package replay

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/traffic"
)

func TestGenerate(t *testing.T) {
	cfg := DefaultGenerateConfig()
	cfg.Traffic.Sites, cfg.Traffic.Visitors, cfg.Traffic.Events = 4, 1000, 3000
	cfg.Traffic.Duration = 2 * time.Minute
	for s := range cfg.Traffic.Bots {
		cfg.Traffic.Bots[s] = 1
	}
	for _, labels := range []bool{true, false} {
		cfg.Labels = labels
		var got bytes.Buffer
		n, err := Generate(t.Context(), cfg, &got)
		if err != nil {
			t.Fatal(err)
		}
		reqs, err := traffic.Generate(cfg.Traffic)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := traffic.WriteJSONL(&want, reqs, labels); err != nil {
			t.Fatal(err)
		}
		if n != int64(len(reqs)) || n <= 3000 || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("labels=%v: %d lines, want the %d humans and bots of traffic.Generate (> 3000), byte for byte", labels, n, len(reqs))
		}
		if has := bytes.Contains(got.Bytes(), []byte(`"label":"scraper"`)); has != labels {
			t.Errorf("labels=%v: output has scraper labels: %v", labels, has)
		}
	}
}

func TestGenerateCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cfg := DefaultGenerateConfig()
	cfg.Traffic.Visitors = 100
	if _, err := Generate(ctx, cfg, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	cfg.Traffic.Sites = 0
	if _, err := Generate(t.Context(), cfg, io.Discard); !errors.Is(err, traffic.ErrConfig) {
		t.Errorf("error %v, want traffic.ErrConfig", err)
	}
}

func TestGenerateFlags(t *testing.T) {
	parse := func(args ...string) (GenerateConfig, error) {
		cfg := DefaultGenerateConfig()
		fs := flag.NewFlagSet("generate", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		return cfg, cfg.Validate()
	}
	cfg, err := parse("-sites", "3", "-visitors", "50", "-events", "7", "-start", "2025-06-01T12:00:00+02:00",
		"-duration", "1h", "-seed", "9", "-bots", "scraper=2, low-and-slow=1,ua-rotation=0", "-labels=false")
	if err != nil {
		t.Fatal(err)
	}
	want := traffic.DefaultConfig()
	want.Sites, want.Visitors, want.Events, want.Duration, want.Seed = 3, 50, 7, time.Hour, 9
	want.Start = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	if !cfg.Traffic.Start.Equal(want.Start) {
		t.Errorf("start %v, want %v", cfg.Traffic.Start, want.Start)
	}
	cfg.Traffic.Start = want.Start
	if !maps.Equal(cfg.Traffic.Bots, map[traffic.Scenario]int{traffic.Scraper: 2, traffic.LowAndSlow: 1}) || cfg.Labels {
		t.Errorf("bots %v labels %v", cfg.Traffic.Bots, cfg.Labels)
	}
	cfg.Traffic.Bots = nil
	if !equalTraffic(cfg.Traffic, want) {
		t.Errorf("config %+v, want %+v", cfg.Traffic, want)
	}
	if cfg, err := parse("-bots", "none"); err != nil || len(cfg.Traffic.Bots) != 0 {
		t.Errorf("-bots none: %v, %v", cfg.Traffic.Bots, err)
	}
	if cfg, err := parse("-start", "now"); err != nil || time.Since(cfg.Traffic.Start) > time.Minute {
		t.Errorf("-start now: %v, %v", cfg.Traffic.Start, err)
	}
	if b := DefaultBots(); b.String() != "scraper=10,credential-stuffing=10,ua-rotation=10,low-and-slow=10" {
		t.Error("the default of -bots does not print in scenario order")
	}
	for _, tt := range []struct{ args, want string }{
		{"-bots robot=1", `unknown scenario "robot"`},
		{"-bots scraper", "want n or scenario=n"},
		{"-bots scraper=-1", "0 or more"},
		{"-bots scraper=1,scraper=2", "named twice"},
		{"-start yesterday", "RFC 3339"},
		{"-sites 0", "sites must be at least 1"},
		{"-skew 1", "skew must be above 1"},
	} {
		if _, err := parse(strings.Fields(tt.args)...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.args, err, tt.want)
		}
	}
}

func equalTraffic(a, b traffic.Config) bool {
	return a.Sites == b.Sites && a.Visitors == b.Visitors && a.Events == b.Events && a.Start.Equal(b.Start) &&
		a.Duration == b.Duration && a.Seed == b.Seed && a.Skew == b.Skew && a.SkewOffset == b.SkewOffset &&
		maps.Equal(a.Bots, b.Bots)
}
