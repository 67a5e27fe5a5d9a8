package publisher

import (
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// maxShadowSelectors bounds the candidate models compared: a record's
// model is a name from the scores topic, and each compared model keeps a
// Selector's state. The policy allows fewer candidates than this; the
// scores of any beyond it are stored and not compared.
const maxShadowSelectors = 16

// shadows runs a Selector per candidate model over the candidate's score
// records, so that what each would have published is known, compared
// with what the live model publishes, and never published: the comparison
// in the metrics. The stored scores (the scores table, by model) give the
// same comparison per site on demand (anomalyctl shadow).
type shadows struct {
	cfg  SelectConfig
	sels map[string]*Selector
	// published are the batch's live detections, compared at its end:
	// the detector writes a window's candidate records right after its
	// live one, in the same partition, so they are in the same batch but
	// where a batch ends between them (then live counts as missed what
	// the candidate detects in the next batch, where it counts as both).
	published []liveDetection
}

type liveDetection struct {
	site    string
	visitor uint64
}

func newShadows(cfg SelectConfig) *shadows {
	return &shadows{cfg: cfg, sels: make(map[string]*Selector)}
}

// selector returns the Selector of model, nil beyond maxShadowSelectors.
func (sh *shadows) selector(model string) *Selector {
	if s := sh.sels[model]; s != nil {
		return s
	}
	if len(sh.sels) >= maxShadowSelectors {
		return nil
	}
	s := NewSelector(sh.cfg)
	sh.sels[model] = s
	return s
}

// selectShadow runs a candidate's score record through its Selector, under
// the same policy as the live one, and counts what it would have published
// by whether live has the visitor detected then.
func (sh *shadows) selectShadow(sc *records.Score, visitor uint64, p *policy.Policy, live *Selector, m *Metrics) {
	s := sh.selector(sc.Model)
	if s == nil {
		return
	}
	count := func(site string, visitor uint64) {
		agree := "false"
		if live.Detected(site, visitor) {
			agree = "true"
		}
		m.ShadowDetections.WithLabelValues(sc.Model, agree).Inc()
	}
	if d, outcome := s.Select(sc, visitor, p); outcome == Published {
		count(d.Site, visitor)
	}
	for _, d := range s.GroupDetections() {
		v, err := records.ParseVisitorID(d.Visitor)
		if err == nil {
			count(d.Site, v)
		}
	}
	s.Revocations() // a candidate's are never published
}

// livePublished notes a visitor the live model published, to be compared
// at the batch's end (settle).
func (sh *shadows) livePublished(d *records.Detection) {
	if len(sh.sels) == 0 {
		return
	}
	if v, err := records.ParseVisitorID(d.Visitor); err == nil {
		sh.published = append(sh.published, liveDetection{d.Site, v})
	}
}

// settle counts, for each candidate, the visitors live published in the
// batch that the candidate does not have detected.
func (sh *shadows) settle(m *Metrics) {
	for _, d := range sh.published {
		for model, s := range sh.sels {
			if !s.Detected(d.site, d.visitor) {
				m.ShadowMissed.WithLabelValues(model).Inc()
			}
		}
	}
	sh.published = sh.published[:0]
}

// allowed ends the candidates' detections of an allowed visitor, as the
// live one's.
func (sh *shadows) allowed(sc *records.Score, visitor uint64) {
	for _, s := range sh.sels {
		s.Allowed(sc, visitor)
		s.Revocations()
	}
}

// reconcile applies a new policy to every candidate's detections, as to
// the live ones, and starts comparing the candidates it names, so that
// live detections before a candidate's first record count against it.
func (sh *shadows) reconcile(p *policy.Policy) {
	for _, c := range p.Shadows() {
		sh.selector(c.Name)
	}
	for _, s := range sh.sels {
		s.Reconcile(p)
		s.Revocations()
	}
}
