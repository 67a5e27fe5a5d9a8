package traffic

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Bots is the number of bot visitors of each scenario, as in Config.Bots
// (of campaigns, for a coordinated scenario). As a flag.Value it reads "n"
// (n of each of the four original scenarios, as EveryScenario),
// "scenario=n[,...]" with any scenario of AllScenarios, or "none", and
// prints in AllScenarios order; Set replaces the whole map, so that a flag
// given twice keeps the last value.
type Bots map[Scenario]int

// EveryScenario returns n bots of each of the four original scenarios
// (Scenarios): the default of tools that predate the others.
func EveryScenario(n int) Bots {
	b := make(Bots)
	for _, s := range Scenarios() {
		b[s] = n
	}
	return b
}

func (b *Bots) String() string {
	var parts []string
	for _, s := range AllScenarios() { // fixed order: -h shows a stable default
		if n := (*b)[s]; n > 0 {
			parts = append(parts, string(s)+"="+strconv.Itoa(n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func (b *Bots) Set(v string) error {
	bots := make(Bots)
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return fmt.Errorf("%d: want 0 or more bots", n)
		}
		bots = EveryScenario(n)
	} else if v != "none" && v != "" {
		for item := range strings.SplitSeq(v, ",") {
			name, count, ok := strings.Cut(strings.TrimSpace(item), "=")
			s := Scenario(name)
			n, err := strconv.Atoi(count)
			switch {
			case !ok:
				return fmt.Errorf("%q: want n or scenario=n[,...]", item)
			case !slices.Contains(AllScenarios(), s):
				return fmt.Errorf("unknown scenario %q (want %s)", name, ScenarioNames())
			case err != nil || n < 0:
				return fmt.Errorf("%q: the count must be a whole number, 0 or more", item)
			}
			if _, dup := bots[s]; dup {
				return fmt.Errorf("scenario %q named twice", name)
			}
			bots[s] = n
		}
	}
	for s, n := range bots {
		if n == 0 {
			delete(bots, s)
		}
	}
	*b = bots
	return nil
}

// ScenarioNames lists every scenario (AllScenarios), for help texts and
// errors.
func ScenarioNames() string {
	var names []string
	for _, s := range AllScenarios() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}
