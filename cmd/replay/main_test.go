package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type result struct {
	code           int
	stdout, stderr string
}

func runReplay(t *testing.T, stdin []byte, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, bytes.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(file, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no command", nil, nil, 2, "replay send [flags] FILE..."},
		{"unknown command", nil, []string{"play"}, 2, `unknown command "play"`},
		{"help", nil, []string{"-h"}, 0, "Examples:"},
		{"send help", nil, []string{"send", "-h"}, 0, "ANOMALYD_REQUESTS_TOPIC"},
		{"generate help", nil, []string{"generate", "-h"}, 0, "ANOMALYD_BOTS"},
		{"send without input", nil, []string{"send"}, 2, "no input"},
		{"send unknown flag", nil, []string{"send", "-speed", "9", file}, 2, "flag provided but not defined: -speed"},
		{"send bad rate", nil, []string{"send", "-rate", "-5", file}, 2, "-rate"},
		{"send bad brokers", nil, []string{"send", "-brokers", "kafka", file}, 2, `-brokers: "kafka" is not host:port`},
		{"send bad identity", nil, []string{"send", "-identity", "cookie", file}, 2, "unknown identity mode"},
		{"send bad fields", nil, []string{"send", "-fields", "ip=", file}, 2, "required field ip has no key"},
		{"send bad env", map[string]string{"ANOMALYD_RATE": "fast"}, []string{"send", file}, 2, "ANOMALYD_RATE"},
		{"send missing file", nil, []string{"send", filepath.Join(dir, "nope.jsonl")}, 1, "nope.jsonl: no such file"},
		{"generate argument", nil, []string{"generate", "out.jsonl"}, 2, `unexpected argument "out.jsonl"`},
		{"generate bad bots", nil, []string{"generate", "-bots", "crawler=3"}, 2, `unknown scenario "crawler"`},
		{"generate bad start", nil, []string{"generate", "-start", "monday"}, 2, "RFC 3339"},
		{"generate bad sites", nil, []string{"generate", "-sites", "0"}, 2, "sites must be at least 1"},
		{"generate bad env", map[string]string{"ANOMALYD_EVENTS": "many"}, []string{"generate"}, 2, "ANOMALYD_EVENTS"},
		{"generate unwritable", nil, []string{"generate", "-events", "1", "-o", filepath.Join(dir, "no", "dir.jsonl")}, 1, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runReplay(t, nil, tt.env, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// TestHelpExplainsEveryFlag checks that -h names every flag of both
// commands and shows the generate-then-send examples.
func TestHelpExplainsEveryFlag(t *testing.T) {
	for cmd, flags := range map[string][]string{
		"generate": {"-sites", "-visitors", "-events", "-start", "-duration", "-seed", "-skew", "-skew-offset", "-bots", "-labels", "-o"},
		"send":     {"-brokers", "-requests-topic", "-fields", "-identity", "-rate", "-batch", "-progress"},
	} {
		r := runReplay(t, nil, nil, cmd, "-h")
		for _, f := range flags {
			if !regexp.MustCompile(`(?m)^  ` + f + `\b`).MatchString(r.stderr) {
				t.Errorf("%s -h does not explain %s", cmd, f)
			}
		}
		if !strings.Contains(r.stderr, "replay generate -events 1000000 -o traffic.jsonl.gz") ||
			!strings.Contains(r.stderr, "replay send -brokers") {
			t.Errorf("%s -h lacks the examples:\n%s", cmd, r.stderr)
		}
	}
}

// TestGenerateThenSend is the README's example against an in-process
// broker: generate a gzipped file, send it and stdin, read it all back.
func TestGenerateThenSend(t *testing.T) {
	const topic = "requests-replay"
	k := testenv.Kafka(t, topic)
	dir := t.TempDir()
	file := filepath.Join(dir, "traffic.jsonl.gz")

	r := runReplay(t, nil, nil, "generate", "-sites", "3", "-visitors", "300", "-events", "3000",
		"-duration", "2m", "-bots", "scraper=1,credential-stuffing=1", "-o", file)
	if r.code != 0 {
		t.Fatalf("generate: exit %d: %s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`wrote (\d+) events to `).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("generate stderr %q lacks the count", r.stderr)
	}
	n, _ := strconv.Atoi(m[1])
	if n <= 3000 {
		t.Fatalf("generated %d events, want 3000 humans and some bots", n)
	}
	// The same traffic, plain, on stdout.
	plain := runReplay(t, nil, nil, "generate", "-sites", "3", "-visitors", "300", "-events", "3000",
		"-duration", "2m", "-bots", "scraper=1,credential-stuffing=1")
	if plain.code != 0 || strings.Count(plain.stdout, "\n") != n {
		t.Fatalf("generate to stdout: exit %d, %d lines, want %d", plain.code, strings.Count(plain.stdout, "\n"), n)
	}

	env := map[string]string{"ANOMALYD_BROKERS": strings.Join(k.Brokers(), ",")} // as a deployment sets it
	r = runReplay(t, []byte(plain.stdout+"oops\n"), env, "send", "-requests-topic", topic, "-progress", "0", file, "-")
	if r.code != 0 {
		t.Fatalf("send: exit %d: %s", r.code, r.stderr)
	}
	want := 2*n + 1
	if !strings.Contains(r.stderr, "stdin:"+strconv.Itoa(n+1)+": malformed event") ||
		!strings.Contains(r.stderr, ": "+strconv.Itoa(want)+" events (1 malformed,") {
		t.Errorf("send stderr lacks the malformed line or the summary:\n%s", r.stderr)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers(), Topic: topic, GroupID: "cmd-test", MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	keys := make(map[string]int)
	for i := range want {
		msg, err := rd.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("FetchMessage after %d of %d: %v", i, want, err)
		}
		keys[string(msg.Key)]++
	}
	if keys[""] != 1 {
		t.Errorf("%d messages without a key, want the 1 malformed line", keys[""])
	}
	for k, c := range keys {
		if k != "" && (!regexp.MustCompile(`^[a-z0-9.]+\|[0-9a-f.:]+$`).MatchString(k) || c%2 != 0) {
			t.Errorf("key %q (%d messages) is not site|IP, or not in both inputs alike", k, c)
		}
	}
}

// TestSendFails checks that a broker that cannot be reached is exit 1,
// with a summary.
func TestSendFails(t *testing.T) {
	k := testenv.Kafka(t, "requests")
	brokers := strings.Join(k.Brokers(), ",")
	k.Close() // nothing listens there any more
	line := `{"EdgeStartTimestamp":"2026-01-01T00:00:00Z","ZoneName":"a.example","ClientIP":"192.0.2.1"}` + "\n"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"send", "-brokers", brokers, "-"}, strings.NewReader(line), &out, &errOut, func(string) string { return "" })
	if code != 1 || !strings.Contains(errOut.String(), "sent to topic requests: 0 events") || !strings.Contains(errOut.String(), "stdin:1-1") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1, 0 events sent and the lines that failed", code, errOut.String())
	}
}
