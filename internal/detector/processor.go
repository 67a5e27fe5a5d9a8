package detector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
	"github.com/anomalyd/anomalyd/pkg/model"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// Store is what a shard needs of its feature store: featurestore.Store, and
// Reset for when another replica may have written its visitors.
type Store interface {
	featurestore.Store
	Reset()
}

// BaselineSource gives the baseline of a site's traffic class
// (*Baselines).
type BaselineSource interface {
	Get(ctx context.Context, site string, class features.Class) (bl *model.Baseline, version string, ok bool)
}

// Processor turns batches of request events into score records and dead
// letters, keeping the visitors' window features in its stores. Events are
// decoded in parallel, then each visitor's events go, in order, to one of
// Workers shards (by visitor id), each with its own store and recency
// register. A shard adds a visitor's requests one at a time and scores the
// window right after the request that made it due, so a score reflects
// exactly the requests up to that one, whatever the batch boundaries: the
// same input gives the same scores.
//
// A Processor is not safe for concurrent use, but for Decode, which may
// run while Score scores the batch before.
type Processor struct {
	cfg      Config
	window   features.Window
	set      features.Set
	minReqs  uint64
	names    []string
	decoders []*decodeWorker
	shards   []*shard
	source   BaselineSource
	metrics  *Metrics
	timeKey  string           // the event field of the time, for errors
	now      func() time.Time // the clock event times are checked against
	policy   func() *policy.Policy
	// classes gives the decoders the traffic-class rules of the policy
	// in force; only Decode, which is never called concurrently, uses it.
	classes *policy.Classes

	items []item         // the batch Score is scoring
	pol   *policy.Policy // and the policy in force for it
}

// decodeWorker decodes a slice of a batch.
type decodeWorker struct {
	decoder  *features.Decoder
	observer *features.Observer
	ev       features.Event
}

// item is one event of a batch after decoding.
type item struct {
	obs    features.Observation
	site   string
	time   time.Time
	page   uint64 // features.Page
	err    error  // why it is a dead letter
	reason string // the dead-letter reason label of err
	// unscored is why the policy keeps the request from detection, the
	// unscored_total reason: site_off or allowed; "" to score it.
	unscored string
	// allowedWho: the request is allowed for who its visitor is, whose
	// live detection the publisher is to revoke (records.Score.Allowed).
	allowedWho bool
}

// shard is one worker's share of the visitors.
type shard struct {
	store   Store
	recency *features.Recency
	obs     []features.Observation
	idx     []int // batch indexes of obs
	vec     []float64
	svec    []float64 // a candidate model's features of vec
	contrib []float64
	// features is the scratch of a score record's contributions: the
	// record is kept only as its encoding.
	features []records.Contribution
	scores   []kafka.Message
	counts   shardCounts
	// evicted is what the metrics have of the store's and the register's
	// evictions.
	evicted featurestore.Evictions
	forgot  uint64
}

// shardCounts are a shard's counts for one batch, added to the metrics
// after the batch so the shards share no counters.
type shardCounts struct {
	scored, outliers, early, shadow, allowed, recencySkips, noBaseline, tooFew, backfill, errors uint64
}

// evictionCounter is a store that drops state to stay within its bounds
// (*featurestore.RedisStore).
type evictionCounter interface{ Evicted() featurestore.Evictions }

// NewProcessor returns a Processor for the detector's features config.
// newStore is called once per worker.
func NewProcessor(cfg Config, fc features.Config, newStore func() (Store, error), source BaselineSource, metrics *Metrics) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := fc.Validate(); err != nil {
		return nil, err
	}
	id, err := features.NewIdentity(fc.Identity, []byte(fc.Secret))
	if err != nil {
		return nil, err
	}
	p := &Processor{
		cfg: cfg, window: fc.Window, set: fc.Set(), minReqs: uint64(fc.MinRequests), source: source, metrics: metrics,
		timeKey: fc.Fields.Time, now: time.Now, policy: func() *policy.Policy { return nil }, classes: policy.NewClasses(fc.Classes),
	}
	p.names = p.set.Names()
	classes := fc.Classifier()
	for range cfg.Workers {
		dec, err := features.NewDecoder(fc.Fields)
		if err != nil {
			return nil, err
		}
		p.decoders = append(p.decoders, &decodeWorker{decoder: dec, observer: features.NewObserver(fc.Window, id, classes)})
		store, err := newStore()
		if err != nil {
			return nil, err
		}
		p.shards = append(p.shards, &shard{store: store, recency: features.NewRecency(cfg.RescoreInterval, cfg.MaxVisitors/cfg.Workers)})
	}
	return p, nil
}

// SetPolicy makes the Processor take its policy from source (a
// policy.Watcher's Policy), read once a batch; nil: none. Of a site off it
// scores nothing, nor any request an allow-list entry matches; a site's
// threshold and min_requests replace -threshold and -min-requests. Call
// it before the first batch.
func (p *Processor) SetPolicy(source func() *policy.Policy) {
	if source == nil {
		source = func() *policy.Policy { return nil }
	}
	p.policy = source
}

// Names are the features the detector computes, in order: a baseline must
// be fitted on these.
func (p *Processor) Names() []string { return append([]string(nil), p.names...) }

// Batch is what a processed batch produced.
type Batch struct {
	Scores      []kafka.Message // score records, keyed site|visitor
	DeadLetters []kafka.Message // malformed events with the reason
}

// ErrPartial means Process failed with part of the batch added to the
// stores: the Processor must not flush or process anything more. The
// caller stops, and the uncommitted batch is read again by a fresh one.
var ErrPartial = errors.New("batch partly processed")

// Process decodes and scores msgs: Score(ctx, Decode(msgs)).
func (p *Processor) Process(ctx context.Context, msgs []kafka.Message) (Batch, error) {
	return p.Score(ctx, p.Decode(msgs))
}

// Decoded is a batch of messages decoded by Decode, for Score.
type Decoded struct {
	msgs   []kafka.Message
	items  []item
	policy *policy.Policy // in force when it was decoded, for Score too
}

// Messages returns the batch's messages.
func (d *Decoded) Messages() []kafka.Message { return d.msgs }

// Decode decodes msgs in parallel, and refuses events whose time is out of
// Config.EventTime's bounds. It shares nothing with Score, so it may decode
// a batch while Score scores the one before.
func (p *Processor) Decode(msgs []kafka.Message) *Decoded {
	d := &Decoded{msgs: msgs, items: make([]item, len(msgs)), policy: p.policy()}
	classes := p.classes.Of(d.policy)
	for _, w := range p.decoders {
		w.observer.SetClassifier(classes)
	}
	now := p.now()
	p.parallel(len(p.decoders), func(w int) {
		lo, hi := w*len(msgs)/len(p.decoders), (w+1)*len(msgs)/len(p.decoders)
		for i := lo; i < hi; i++ {
			it := &d.items[i]
			p.decoders[w].decode(msgs[i].Value, it, d.policy, now)
			if it.err == nil {
				if reason, err := p.cfg.EventTime.Check(it.time, now); err != nil {
					it.err, it.reason = fmt.Errorf("field %q: %w", p.timeKey, err), reason
				}
			}
		}
	})
	return d
}

// Score scores a decoded batch. If the feature store fails before
// anything is added (Redis down: the error wraps featurestore.ErrUnavailable
// and not ErrPartial), nothing changed and Score may be called again with
// the same batch.
func (p *Processor) Score(ctx context.Context, d *Decoded) (Batch, error) {
	msgs := d.msgs
	p.items, p.pol = d.items, d.policy
	defer func() { p.items, p.pol = nil, nil }()
	var out Batch
	var deadReasons, unscored []string
	for _, sh := range p.shards {
		sh.scores, sh.obs, sh.idx = sh.scores[:0], sh.obs[:0], sh.idx[:0]
	}
	for i := range p.items {
		it := &p.items[i]
		if it.err != nil {
			deadReasons = append(deadReasons, it.reason)
			out.DeadLetters = append(out.DeadLetters, service.DeadLetter(msgs[i], it.err))
			continue
		}
		if it.unscored != "" {
			unscored = append(unscored, it.unscored)
			if it.allowedWho {
				if err := p.shards[it.obs.Visitor%uint64(len(p.shards))].recordAllowed(p, it); err != nil {
					return Batch{}, err
				}
			}
			continue
		}
		sh := p.shards[it.obs.Visitor%uint64(len(p.shards))]
		sh.obs = append(sh.obs, it.obs)
		sh.idx = append(sh.idx, i)
	}

	errs := make([]error, len(p.shards))
	p.parallel(len(p.shards), func(s int) {
		if sh := p.shards[s]; len(sh.obs) > 0 {
			errs[s] = sh.store.Prefetch(ctx, sh.obs)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Batch{}, fmt.Errorf("prefetching features: %w", err)
	}
	p.parallel(len(p.shards), func(s int) { errs[s] = p.shards[s].process(ctx, p) })
	if err := errors.Join(errs...); err != nil {
		return Batch{}, fmt.Errorf("%w: %w", ErrPartial, err)
	}

	p.metrics.Events.Add(float64(len(msgs)))
	for _, r := range deadReasons {
		p.metrics.DeadLetters.WithLabelValues(r).Inc()
	}
	for _, r := range unscored {
		p.metrics.Unscored.WithLabelValues(r).Inc()
	}
	for _, sh := range p.shards {
		c := &sh.counts
		p.metrics.Scored.Add(float64(c.scored))
		p.metrics.Outliers.Add(float64(c.outliers))
		p.metrics.Early.Add(float64(c.early))
		p.metrics.ShadowScores.Add(float64(c.shadow))
		p.metrics.AllowedRecords.Add(float64(c.allowed))
		p.metrics.RecencySkips.Add(float64(c.recencySkips))
		p.metrics.Unscored.WithLabelValues("no_baseline").Add(float64(c.noBaseline))
		p.metrics.Unscored.WithLabelValues("too_few_requests").Add(float64(c.tooFew))
		p.metrics.Unscored.WithLabelValues("backfill").Add(float64(c.backfill))
		p.metrics.Unscored.WithLabelValues("error").Add(float64(c.errors))
		sh.counts = shardCounts{}
		out.Scores = append(out.Scores, sh.scores...)
	}
	p.countEvictions()
	return out, nil
}

// countEvictions adds to the metrics what the shards dropped since they
// were last counted.
func (p *Processor) countEvictions() {
	for _, sh := range p.shards {
		if f := sh.recency.Evictions(); f > sh.forgot {
			p.metrics.Evictions.WithLabelValues("recency").Add(float64(f - sh.forgot))
			sh.forgot = f
		}
		ec, ok := sh.store.(evictionCounter)
		if !ok {
			continue
		}
		e := ec.Evicted()
		p.metrics.Evictions.WithLabelValues("open").Add(float64(e.Open - sh.evicted.Open))
		p.metrics.Evictions.WithLabelValues("closed").Add(float64(e.Closed - sh.evicted.Closed))
		sh.evicted = e
	}
}

// parallel runs f(0..n-1) on n goroutines and waits for them.
func (p *Processor) parallel(n int, f func(int)) {
	if n == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

// decode decodes one event into it, and notes what pol, at now, keeps
// from detection.
func (d *decodeWorker) decode(data []byte, it *item, pol *policy.Policy, now time.Time) {
	if err := d.decoder.Decode(data, &d.ev); err != nil {
		it.err, it.reason = err, service.ReasonMalformed
		return
	}
	if err := d.observer.Observe(&d.ev, &it.obs); err != nil {
		it.err, it.reason = err, service.ReasonIdentity
		return
	}
	it.site, it.time, it.page = d.ev.Site, d.ev.Time, features.Page(&d.ev, &it.obs)
	if pol == nil {
		return
	}
	switch off, allowed, who := pol.Screen(it.site, &policy.Request{IP: d.ev.ClientIP, ASN: d.ev.ASN, UserAgent: d.ev.UserAgent, Path: d.ev.Path, Visitor: it.obs.Visitor}, now); {
	case off:
		it.unscored = unscoredSiteOff
	case allowed:
		it.unscored, it.allowedWho = unscoredAllowed, who
	}
}

// The unscored_total reasons of requests the policy keeps from detection.
const (
	unscoredSiteOff = "site_off"
	unscoredAllowed = "allowed"
)

// process adds the shard's events of the batch, prefetched, and scores the
// visitors that are due.
func (sh *shard) process(ctx context.Context, p *Processor) error {
	for k := range sh.obs {
		o := &sh.obs[k]
		if err := sh.store.Add(ctx, sh.obs[k:k+1]); err != nil {
			return fmt.Errorf("adding features: %w", err)
		}
		it := &p.items[sh.idx[k]]
		if it.time.Before(p.cfg.ScoreFrom) {
			sh.counts.backfill++
			continue
		}
		if !sh.recency.Due(o.Site, o.Visitor, it.time) {
			sh.counts.recencySkips++
			continue
		}
		if err := sh.score(ctx, p, o, it); err != nil {
			return err
		}
	}
	return nil
}

// score scores the window of o's visitor ending at o's bucket, and appends
// its record to sh.scores. A window of fewer than -min-requests requests
// is not scored, but one of exactly the requests of its baseline's early
// part is recorded as the beginning of a visit (see recordEarly).
func (sh *shard) score(ctx context.Context, p *Processor, o *features.Observation, it *item) error {
	agg, err := sh.store.Window(ctx, o.Site, o.Visitor, o.Bucket)
	if err != nil {
		return fmt.Errorf("reading a window: %w", err)
	}
	minReqs := p.minReqs
	if n := p.pol.MinRequests(it.site); n > 0 {
		minReqs = max(minReqs, uint64(n))
	}
	if n := agg.Counts[features.CountRequests]; n < minReqs {
		sh.counts.tooFew++
		sh.recency.Forget(o.Site, o.Visitor) // due again at its next request
		return sh.recordEarly(ctx, p, o, it, &agg)
	}
	class := agg.Class()
	bl, version, ok := p.source.Get(ctx, it.site, class)
	if !ok {
		sh.counts.noBaseline++
		return nil
	}
	rec, ok := sh.record(p, o, it, &agg, class, bl, version, false)
	if !ok {
		return nil
	}
	if err := sh.append(&rec); err != nil {
		return err
	}
	sh.counts.scored++
	if rec.Score > rec.Threshold {
		sh.counts.outliers++
	}
	return sh.recordShadows(p, &rec, bl)
}

// recordShadows appends the records of bl's candidate models for the
// window the live record was scored on (sh.vec): the same record but for
// the model's name, score, threshold and features.
func (sh *shard) recordShadows(p *Processor, live *records.Score, bl *model.Baseline) error {
	for i := range bl.Shadows {
		s := &bl.Shadows[i]
		sh.svec = sh.svec[:0]
		for _, j := range s.Index {
			sh.svec = append(sh.svec, sh.vec[j])
		}
		sh.contrib = append(sh.contrib[:0], sh.svec...)
		score, err := s.Model.Explain(sh.svec, sh.contrib)
		if err != nil {
			sh.counts.errors++
			continue
		}
		rec := *live
		rec.Model, rec.Score, rec.Threshold = s.Name, score, s.Model.Threshold()
		rec.Features = slices.Grow(sh.features[:0], len(s.Index))[:len(s.Index)]
		for k, j := range s.Index {
			rec.Features[k] = records.Contribution{Feature: p.names[j], Value: sh.svec[k], Contribution: sh.contrib[k]}
		}
		sh.features = rec.Features
		if err := sh.append(&rec); err != nil {
			return err
		}
		sh.counts.shadow++
	}
	return nil
}

// recordAllowed appends the record of a visitor allowed for who it is, at
// most once per rescore interval (its requests are not scored, so the
// recency register is free for it): the publisher revokes its live
// detection.
func (sh *shard) recordAllowed(p *Processor, it *item) error {
	o := &it.obs
	if !sh.recency.Due(o.Site, o.Visitor, it.time) {
		return nil
	}
	rec := records.Score{
		V: records.Version, Site: it.site, Visitor: records.VisitorID(o.Visitor), Allowed: true,
		WindowStart: p.window.Start(p.window.First(o.Bucket)),
		WindowEnd:   p.window.Start(o.Bucket).Add(p.window.Width),
		ScoredAt:    it.time,
	}
	if err := sh.append(&rec); err != nil {
		return err
	}
	sh.counts.allowed++
	return nil
}

// recordEarly appends the record of a visit's beginning, a window of
// exactly the requests of its baseline's early part, scored with the early
// model: the publisher gathers these into crowds and never publishes one
// for its score alone.
func (sh *shard) recordEarly(ctx context.Context, p *Processor, o *features.Observation, it *item, agg *features.Aggregate) error {
	n := agg.Counts[features.CountRequests]
	if n == 0 {
		return nil
	}
	class := agg.Class()
	bl, version, ok := p.source.Get(ctx, it.site, class)
	if !ok || bl.Early == nil || uint64(bl.Early.Requests) != n {
		return nil
	}
	rec, ok := sh.record(p, o, it, agg, class, bl, version, true)
	if !ok {
		return nil
	}
	if err := sh.append(&rec); err != nil {
		return err
	}
	sh.counts.early++
	return nil
}

// record scores agg, the window of o's visitor, with bl's model (or its
// early part's), and returns its record; not ok if the model does not
// take the detector's features (the cache admits only models of these,
// so it is counted as an error).
func (sh *shard) record(p *Processor, o *features.Observation, it *item, agg *features.Aggregate, class features.Class, bl *model.Baseline, version string, early bool) (records.Score, bool) {
	m, starts := bl.Model, bl.Starts
	threshold := m.Threshold()
	if t := p.pol.Threshold(it.site); t > 0 {
		threshold = t
	} else if p.cfg.Threshold > 0 {
		threshold = p.cfg.Threshold
	}
	if early {
		m, starts = bl.Early.Model, bl.Early.Starts
		threshold = m.Threshold() // -threshold is for scores
	}
	sh.vec = agg.Vector(sh.vec, p.set)
	var shape string
	var share float64
	if starts != nil {
		s := features.Shape(sh.vec)
		shape, share = records.Shape(s), starts.Share(s)
	}
	sh.contrib = append(sh.contrib[:0], sh.vec...)
	score, err := m.Explain(sh.vec, sh.contrib)
	if err != nil {
		sh.counts.errors++
		return records.Score{}, false
	}
	rec := records.Score{
		V:               records.Version,
		Site:            it.site,
		Visitor:         records.VisitorID(o.Visitor),
		Class:           class.String(),
		Returning:       bl.Known != nil && bl.Known.Has(o.Visitor),
		Early:           early,
		Page:            records.Page(it.page),
		Shape:           shape,
		ShapeShare:      share,
		Score:           score,
		Threshold:       threshold,
		Features:        slices.Grow(sh.features[:0], len(sh.vec))[:len(sh.vec)],
		WindowStart:     p.window.Start(p.window.First(o.Bucket)),
		WindowEnd:       p.window.Start(o.Bucket).Add(p.window.Width),
		BaselineVersion: version,
		ScoredAt:        it.time,
	}
	for j, v := range sh.vec {
		rec.Features[j] = records.Contribution{Feature: p.names[j], Value: v, Contribution: sh.contrib[j]}
	}
	sh.features = rec.Features
	return rec, true
}

// append encodes rec onto the batch's score records.
func (sh *shard) append(rec *records.Score) error {
	value, err := rec.AppendJSON(make([]byte, 0, 320+96*len(rec.Features)))
	if err != nil {
		return fmt.Errorf("encoding a score record: %w", err)
	}
	sh.scores = append(sh.scores, kafka.Message{Key: records.Key(rec.Site, rec.Visitor), Value: value})
	return nil
}

// Flush writes every shard's features to the store.
func (p *Processor) Flush(ctx context.Context) error {
	errs := make([]error, len(p.shards))
	p.parallel(len(p.shards), func(s int) { errs[s] = p.shards[s].store.Flush(ctx) })
	p.countEvictions()
	return errors.Join(errs...)
}

// Reset makes every store forget what another replica may have changed.
func (p *Processor) Reset() {
	for _, sh := range p.shards {
		sh.store.Reset()
	}
}
