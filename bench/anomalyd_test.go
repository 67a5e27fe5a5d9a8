package bench

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

// anomalydBatch is how many events the detector handles between two
// Flushes (one Kafka fetch, committed after the Flush).
const anomalydBatch = 1000

// anomalydRescore is the recency register's interval: a (site, visitor) is
// scored at most once per minute of event time, one bucket width.
const anomalydRescore = time.Minute

// runAnomalyd is the detector's event loop over pkg/features: per batch,
// turn the requests into observations with features.Observer (visitor
// identity, query shape, value hashes), Add them, score every pair the
// recency register says is due by reading its window, then Flush, as the
// detector does before committing offsets.
func runAnomalyd(ctx context.Context, p featurePartition) (int, error) {
	w := p.w
	store, err := featurestore.NewRedisStore(p.rdb, w, featurestore.RedisOptions{})
	if err != nil {
		return 0, err
	}
	recency := features.NewRecency(anomalydRescore, 0)
	identity, err := features.NewIdentity(features.IdentityIP, []byte("benchmark identity secret, 32+ bytes"))
	if err != nil {
		return 0, err
	}
	observer := features.NewObserver(w, identity, features.DefaultClassifier())
	obs := make([]features.Observation, anomalydBatch)
	var ev features.Event
	var buf []byte
	scores := 0
	for start := 0; start < len(p.events); start += anomalydBatch {
		batch := p.events[start:min(start+anomalydBatch, len(p.events))]
		obs = obs[:len(batch)]
		for i := range batch {
			if buf, err = toEvent(&ev, &batch[i], buf); err != nil {
				return 0, err
			}
			if err := observer.Observe(&ev, &obs[i]); err != nil {
				return 0, err
			}
		}
		if err := store.Add(ctx, obs); err != nil {
			return 0, err
		}
		for i := range obs {
			o := &obs[i]
			if !recency.Due(o.Site, o.Visitor, batch[i].Time) {
				continue
			}
			agg, err := store.Window(ctx, o.Site, o.Visitor, o.Bucket)
			if err != nil {
				return 0, err
			}
			if p.onScore != nil {
				p.onScore(start+i, agg)
			}
			scores++
		}
		if err := store.Flush(ctx); err != nil {
			return 0, err
		}
	}
	return scores, nil
}

// toEvent fills ev with r as features.Decoder would have decoded it: the
// byte fields are views of one reused buffer, which it returns (the decoder
// copies JSON strings into its own buffer in the same way).
func toEvent(ev *features.Event, r *traffic.Request, buf []byte) ([]byte, error) {
	ip, err := netip.ParseAddr(r.ClientIP)
	if err != nil {
		return buf, fmt.Errorf("client IP %q: %w", r.ClientIP, err)
	}
	buf = buf[:0]
	var ends [5]int
	for i, s := range [...]string{r.Method, r.Path, r.UserAgent, r.Referer, r.Path} {
		buf = append(buf, s...)
		if i == 4 && r.Query != "" {
			buf = append(append(buf, '?'), r.Query...)
		}
		ends[i] = len(buf)
	}
	*ev = features.Event{
		Time:      r.Time,
		Site:      r.Site,
		ClientIP:  ip,
		Method:    buf[:ends[0]],
		Path:      buf[ends[0]:ends[1]],
		UserAgent: buf[ends[1]:ends[2]],
		Referer:   buf[ends[2]:ends[3]],
		URI:       buf[ends[3]:ends[4]],
		Status:    uint16(r.Status),
	}
	return buf, nil
}
