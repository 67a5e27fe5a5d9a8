package traffic

import (
	"strings"
	"testing"
)

func TestBotsFlag(t *testing.T) {
	for in, want := range map[string]string{
		"10":                          "scraper=10,credential-stuffing=10,ua-rotation=10,low-and-slow=10",
		"none":                        "none",
		"":                            "none",
		"0":                           "none",
		"scraper=3,low-and-slow=0":    "scraper=3",
		" ua-rotation=2 , scraper=1 ": "scraper=1,ua-rotation=2",
	} {
		var b Bots
		if err := b.Set(in); err != nil || b.String() != want {
			t.Errorf("Set(%q) = %q, %v; want %q", in, b.String(), err, want)
		}
	}
	for in, want := range map[string]string{
		"-1":                  "0 or more",
		"robot=2":             `unknown scenario "robot"`,
		"scraper":             "want n or scenario=n",
		"scraper=x":           "whole number",
		"scraper=-1":          "whole number",
		"scraper=1,scraper=2": "named twice",
	} {
		b := EveryScenario(1)
		if err := b.Set(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Set(%q) = %v, want an error with %q", in, err, want)
		} else if len(b) != len(Scenarios()) {
			t.Errorf("Set(%q) failed but changed the value to %v", in, b)
		}
	}
}
