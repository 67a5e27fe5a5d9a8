package policy

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// configMap is a directory laid out as Kubernetes mounts a ConfigMap: the
// file is a symlink through "..data", itself a symlink to a directory of
// the version, and an update swaps "..data" atomically.
type configMap struct {
	t   *testing.T
	dir string
	n   int
}

func (c *configMap) write(text string) {
	c.t.Helper()
	c.n++
	version := filepath.Join(c.dir, "..v"+string(rune('0'+c.n)))
	if err := os.Mkdir(version, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(version, "policy.yaml"), []byte(text), 0o644); err != nil {
		c.t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	if c.n == 1 {
		if err := os.Symlink(filepath.Join("..data", "policy.yaml"), filepath.Join(c.dir, "policy.yaml")); err != nil {
			c.t.Fatal(err)
		}
	}
}

// TestWatcherFollowsConfigMap: an update of a mounted ConfigMap is put in
// force, a file with faults is refused and the last good policy kept, and
// SIGHUP reads the file again; the metrics say which version is in force.
func TestWatcherFollowsConfigMap(t *testing.T) {
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.write("sites:\n  a.example: {off: true}\n")
	path := filepath.Join(cm.dir, "policy.yaml")
	reg := prometheus.NewRegistry()
	w, err := NewWatcher(path, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := w.Policy().Version()
	if !w.Policy().Off("a.example") || testutil.ToFloat64(w.metrics.info.WithLabelValues(first)) != 1 {
		t.Fatal("the first policy is not in force")
	}
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(t.Context(), hup, 10*time.Millisecond) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
		}
	}

	cm.write("sites:\n  a.example: {simulate: true}\n")
	waitFor("the ConfigMap's update in force", func() bool { return w.Policy().Simulate("a.example") })
	second := w.Policy().Version()
	if testutil.ToFloat64(w.metrics.info.WithLabelValues(second)) != 1 || testutil.CollectAndCount(w.metrics.info) != 1 {
		t.Error("anomalyd_policy_info does not name the version in force alone")
	}

	cm.write("sites:\n  a.example: {simulate: maybe}\n")
	waitFor("the faulty update refused", func() bool { return testutil.ToFloat64(w.metrics.reloads.WithLabelValues("error")) == 1 })
	if w.Policy().Version() != second || !w.Policy().Simulate("a.example") {
		t.Error("a file with faults replaced the last good policy")
	}

	// SIGHUP with nothing changed: read, and nothing else.
	hup <- syscall.SIGHUP
	waitFor("SIGHUP read", func() bool { return testutil.ToFloat64(w.metrics.reloads.WithLabelValues("unchanged")) == 1 })
	if testutil.ToFloat64(w.metrics.reloads.WithLabelValues("ok")) != 1 {
		t.Errorf("%v reloads ok, want 1", testutil.ToFloat64(w.metrics.reloads.WithLabelValues("ok")))
	}
	cm.write("sites:\n  b.example: {off: true}\n")
	waitFor("the fixed file in force", func() bool { return w.Policy().Off("b.example") })
}

func TestWatcherRefusesAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte("sites: {a.example: {threshold: -1}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWatcher(path, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a file with faults accepted at start")
	}
	if _, err := NewWatcher(path+".missing", prometheus.NewRegistry(), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a missing file accepted at start")
	}
	w, err := NewWatcher("", prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil || w.Policy() != nil || w.Reload() != nil {
		t.Errorf("no file: %v", err)
	}
}
