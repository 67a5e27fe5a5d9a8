package policy

import (
	"context"
	"crypto/sha256"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultCheckEvery is how often a Watcher looks at its file.
const DefaultCheckEvery = 5 * time.Second

// RegisterFlags registers -policy, the file every service reads its policy
// from.
func RegisterFlags(fs *flag.FlagSet, path *string) {
	fs.StringVar(path, "policy", "", "policy `file` (YAML; docs/policy.example.yaml): sites off or simulated, per-site settings, allow-lists. Read again on SIGHUP and when it changes; a file with faults is refused, at start, or later with the last good policy kept. Empty: none")
}

// Watcher keeps a service's policy: the file's last good contents, read
// again on Reload and when the file changes. Kubernetes updates a mounted
// ConfigMap by swapping a symlink, which changes what the path reads
// without an event on the file itself, so the Watcher compares contents
// rather than watching for events.
type Watcher struct {
	path    string
	logger  *slog.Logger
	current atomic.Pointer[Policy]
	sum     [sha256.Size]byte // of the last contents read, good or not
	metrics watcherMetrics
}

type watcherMetrics struct {
	info    *prometheus.GaugeVec
	reloads *prometheus.CounterVec
	sites   *prometheus.GaugeVec
	allow   prometheus.Gauge
}

// NewWatcher reads the policy at path ("" for none) and registers its
// metrics with reg: a file with faults is an error.
//
//	anomalyd_policy_info{version}       1 for the version in force ("" for none)
//	anomalyd_policy_reloads_total{result}  ok, unchanged, error
//	anomalyd_policy_sites{state}        sites named, off, simulated
//	anomalyd_policy_allow_entries       allow-list entries, expired or not
func NewWatcher(path string, reg prometheus.Registerer, logger *slog.Logger) (*Watcher, error) {
	w := &Watcher{path: path, logger: logger, metrics: watcherMetrics{
		info:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "anomalyd_policy_info", Help: "The policy in force: 1 for its version (a digest of the file; empty for none)."}, []string{"version"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anomalyd_policy_reloads_total", Help: "Policy file reads after the first, by result: ok, unchanged, or error (the last good policy kept)."}, []string{"result"}),
		sites:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "anomalyd_policy_sites", Help: "Sites the policy in force names, off, and simulated."}, []string{"state"}),
		allow:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "anomalyd_policy_allow_entries", Help: "Allow-list entries of the policy in force, expired or not."}),
	}}
	for _, c := range []prometheus.Collector{w.metrics.info, w.metrics.reloads, w.metrics.sites, w.metrics.allow} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if path == "" {
		w.set(nil)
		return w, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	w.sum = sha256.Sum256(data)
	w.set(p)
	return w, nil
}

// Policy is the policy in force; nil for none.
func (w *Watcher) Policy() *Policy { return w.current.Load() }

func (w *Watcher) set(p *Policy) {
	w.current.Store(p)
	w.metrics.info.Reset()
	w.metrics.info.WithLabelValues(p.Version()).Set(1)
	c := p.Counts()
	w.metrics.sites.WithLabelValues("named").Set(float64(c.Sites))
	w.metrics.sites.WithLabelValues("off").Set(float64(c.Off))
	w.metrics.sites.WithLabelValues("simulated").Set(float64(c.Simulated))
	w.metrics.allow.Set(float64(c.Allow))
}

// Reload reads the file again and puts it in force if it changed and has
// no fault; with a fault, the last good policy stays, and the error says
// why. Without a file it does nothing.
func (w *Watcher) Reload() error {
	if w.path == "" {
		return nil
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.metrics.reloads.WithLabelValues("error").Inc()
		w.logger.Error("policy not reloaded: the last good one stays", "path", w.path, "err", err)
		return err
	}
	sum := sha256.Sum256(data)
	if sum == w.sum {
		w.metrics.reloads.WithLabelValues("unchanged").Inc()
		return nil
	}
	w.sum = sum
	p, err := Parse(data, w.path)
	if err != nil {
		w.metrics.reloads.WithLabelValues("error").Inc()
		w.logger.Error("policy not reloaded: the last good one stays", "path", w.path, "version", w.Policy().Version(), "err", err)
		return err
	}
	w.set(p)
	w.metrics.reloads.WithLabelValues("ok").Inc()
	c := p.Counts()
	w.logger.Info("policy reloaded", "path", w.path, "version", p.Version(), "sites", c.Sites, "off", c.Off, "simulated", c.Simulated, "allow_entries", c.Allow)
	return nil
}

// Run reloads the policy on every value of reload (SIGHUP) and when the
// file's contents change, looked at every checkEvery, until ctx ends.
// Calls of Reload and Run must not overlap.
func (w *Watcher) Run(ctx context.Context, reload <-chan os.Signal, checkEvery time.Duration) {
	if w.path == "" {
		return
	}
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			_ = w.Reload() // logged and counted
		case <-tick.C:
			if data, err := os.ReadFile(w.path); err == nil && sha256.Sum256(data) != w.sum {
				_ = w.Reload()
			}
		}
	}
}

// Watch returns a Watcher of path, run until ctx ends: it reloads on
// SIGHUP, caught from now on (its default action ends the process), and
// when the file changes. Without a file it catches nothing.
func Watch(ctx context.Context, path string, reg prometheus.Registerer, logger *slog.Logger) (*Watcher, error) {
	w, err := NewWatcher(path, reg, logger)
	if err != nil || path == "" {
		return w, err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		w.Run(ctx, hup, DefaultCheckEvery)
	}()
	return w, nil
}
