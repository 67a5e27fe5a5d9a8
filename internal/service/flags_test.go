package service

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that servers, clients and signal handling leave no
// goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env returns a getenv over a map.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// allFlags registers every shared group on one set, as a service using
// all of them would; it also proves that their names do not collide.
type allFlags struct {
	kafka    KafkaConfig
	http     HTTPConfig
	ch       ClickHouseConfig
	baseline BaselineClientConfig
	log      LogConfig
}

func newAllFlags(t *testing.T) (*flag.FlagSet, *allFlags, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	fs := flag.NewFlagSet("detector", flag.ContinueOnError)
	fs.SetOutput(&out)
	c := new(allFlags)
	c.kafka.RegisterFlags(fs, TopicRequests, TopicScores, TopicDetections, TopicDeadLetter)
	c.http.RegisterFlags(fs, "")
	c.ch.RegisterFlags(fs)
	c.baseline.RegisterFlags(fs)
	c.log.RegisterFlags(fs)
	return fs, c, &out
}

func TestEnvName(t *testing.T) {
	for name, want := range map[string]string{
		"brokers":             "ANOMALYD_BROKERS",
		"log-level":           "ANOMALYD_LOG_LEVEL",
		"clickhouse-password": "ANOMALYD_CLICKHOUSE_PASSWORD",
	} {
		if got := EnvName(name); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestParseFlagsPrecedence(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantBrokers []string
		wantListen  string
		wantLevel   string
	}{
		{
			name:        "defaults",
			wantBrokers: []string{"127.0.0.1:9092"}, wantListen: DefaultListen, wantLevel: "INFO",
		},
		{
			name:        "environment over default",
			env:         map[string]string{"ANOMALYD_BROKERS": "k1:9092, k2:9092", "ANOMALYD_LISTEN": ":9000", "ANOMALYD_LOG_LEVEL": "debug"},
			wantBrokers: []string{"k1:9092", "k2:9092"}, wantListen: ":9000", wantLevel: "DEBUG",
		},
		{
			name:        "command line over environment",
			args:        []string{"-brokers", "a:1", "-log-level=warn"},
			env:         map[string]string{"ANOMALYD_BROKERS": "k1:9092", "ANOMALYD_LISTEN": ":9000", "ANOMALYD_LOG_LEVEL": "debug"},
			wantBrokers: []string{"a:1"}, wantListen: ":9000", wantLevel: "WARN",
		},
		{
			name:        "command line equal to the default still wins",
			args:        []string{"-listen", DefaultListen},
			env:         map[string]string{"ANOMALYD_LISTEN": ":9000"},
			wantBrokers: []string{"127.0.0.1:9092"}, wantListen: DefaultListen, wantLevel: "INFO",
		},
		{
			name:        "empty variable is unset",
			env:         map[string]string{"ANOMALYD_LISTEN": "", "ANOMALYD_BROKERS": ""},
			wantBrokers: []string{"127.0.0.1:9092"}, wantListen: DefaultListen, wantLevel: "INFO",
		},
		{
			name:        "other prefixes are ignored",
			env:         map[string]string{"LISTEN": ":1", "ANOMALYD_listen": ":2"},
			wantBrokers: []string{"127.0.0.1:9092"}, wantListen: DefaultListen, wantLevel: "INFO",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, c, out := newAllFlags(t)
			if err := ParseFlags(fs, tt.args, env(tt.env)); err != nil {
				t.Fatalf("ParseFlags: %v (output %q)", err, out)
			}
			if !slices.Equal(c.kafka.Brokers, tt.wantBrokers) {
				t.Errorf("brokers = %q, want %q", c.kafka.Brokers, tt.wantBrokers)
			}
			if c.http.Listen != tt.wantListen {
				t.Errorf("listen = %q, want %q", c.http.Listen, tt.wantListen)
			}
			if got := c.log.Level.String(); got != tt.wantLevel {
				t.Errorf("log level = %s, want %s", got, tt.wantLevel)
			}
		})
	}
}

func TestParseFlagsBoolFromEnv(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	dry := fs.Bool("dry-run", false, "")
	if err := ParseFlags(fs, nil, env(map[string]string{"ANOMALYD_DRY_RUN": "true"})); err != nil {
		t.Fatal(err)
	}
	if !*dry {
		t.Error("ANOMALYD_DRY_RUN=true did not set -dry-run")
	}
}

func TestParseFlagsBadEnv(t *testing.T) {
	tests := []struct {
		name, variable, value, flag string
	}{
		{"log level", "ANOMALYD_LOG_LEVEL", "loud", "-log-level"},
		{"duration", "ANOMALYD_FLUSH_INTERVAL", "soon", "-flush-interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, _, out := newAllFlags(t)
			fs.Duration("flush-interval", 0, "")
			err := ParseFlags(fs, nil, env(map[string]string{tt.variable: tt.value}))
			if err == nil {
				t.Fatalf("%s=%s was accepted", tt.variable, tt.value)
			}
			for _, want := range []string{tt.variable, tt.flag, tt.value} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if !strings.Contains(out.String(), err.Error()) {
				t.Errorf("output %q does not show the error", out)
			}
		})
	}
}

func TestParseFlagsCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		help bool
	}{
		{"help", []string{"-h"}, true},
		{"unknown flag", []string{"-nope"}, false},
		{"bad value", []string{"-log-level", "loud"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, _, _ := newAllFlags(t)
			err := ParseFlags(fs, tt.args, env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, flag.ErrHelp); got != tt.help {
				t.Errorf("errors.Is(%v, flag.ErrHelp) = %v, want %v", err, got, tt.help)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	fs, _, out := newAllFlags(t)
	const desc = "The detector scores visitors."
	SetUsage(fs, desc)
	// Change values first: -h must still show the defaults.
	if err := ParseFlags(fs, []string{"-brokers", "k9:1", "-listen", ":1"}, env(nil)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	fs.Usage()
	usage := out.String()
	for _, want := range []string{"Usage: detector [flags]", desc, "(default 127.0.0.1:9092)", `(default "127.0.0.1:8080")`} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage does not contain %q:\n%s", want, usage)
		}
	}
	if strings.Contains(usage, "k9:1") {
		t.Errorf("usage shows a parsed value as a default:\n%s", usage)
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(usage, "  -"+f.Name+" ") && !strings.Contains(usage, "  -"+f.Name+"\n") {
			t.Errorf("usage does not list -%s", f.Name)
		}
		if want := "(env " + EnvName(f.Name) + ")"; !strings.Contains(usage, want) {
			t.Errorf("usage does not name %s for -%s", want, f.Name)
		}
	})
	if n != 31 {
		t.Errorf("%d flags registered, want 31", n)
	}
}

func TestAddrList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a:1", []string{"a:1"}},
		{"a:1, b:2 ,c:3", []string{"a:1", "b:2", "c:3"}},
		{"a:1,,b:2", []string{"a:1", "", "b:2"}}, // Validate reports the empty one
		{"  ", nil},
	}
	for _, tt := range tests {
		l := AddrList{"old:1"}
		if err := l.Set(tt.in); err != nil {
			t.Fatalf("Set(%q): %v", tt.in, err)
		}
		if !slices.Equal(l, tt.want) {
			t.Errorf("Set(%q) = %q, want %q", tt.in, l, tt.want)
		}
	}
}
