package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// DefaultStallTimeout is how long a consumer may hold fetched messages
// without committing before /healthz fails: longer than any batch takes
// in good health, short enough that a wedged consumer is restarted.
const DefaultStallTimeout = 5 * time.Minute

// ConsumerReader is what a service reads its topic with (*kafka.Reader in
// a consumer group).
type ConsumerReader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Progress is a consumer's liveness, as Cloudflare's Kafka consumers
// report it: a consumer is alive while it commits what it fetches. One
// that has held fetched messages for longer than the stall timeout without
// a commit is stalled, however healthy its connections look (a write
// retried for ever, a wedged stage), and Live fails so that the
// orchestrator restarts it. A consumer with nothing fetched since its last
// commit is caught up and alive, however long ago that was.
type Progress struct {
	stall time.Duration // 0: never stalled
	now   func() time.Time

	mu         sync.Mutex
	lastCommit time.Time
	// By partition, the offset after the last message fetched and after
	// the last one committed: a commit covers every offset before it, so a
	// commit that failed is made good by the next.
	fetchedTo, committedTo map[int]int64
	heldParts              int       // partitions with messages fetched and not committed
	heldSince              time.Time // the fetch or commit since which some are held
}

// NewProgress returns the progress of a consumer that stalls after stall
// (0: never).
func NewProgress(stall time.Duration) *Progress {
	return &Progress{stall: stall, now: time.Now, fetchedTo: make(map[int]int64), committedTo: make(map[int]int64)}
}

// Watch returns r, reporting its fetches and commits to p.
func (p *Progress) Watch(r ConsumerReader) ConsumerReader { return watchedReader{r, p} }

type watchedReader struct {
	r ConsumerReader
	p *Progress
}

func (w watchedReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	m, err := w.r.FetchMessage(ctx)
	if err == nil {
		w.p.fetched(m.Partition, m.Offset)
	}
	return m, err
}

func (w watchedReader) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := w.r.CommitMessages(ctx, msgs...)
	if err == nil {
		w.p.committed(msgs)
	}
	return err
}

// set moves partition's offset in m to at least to, and keeps heldParts.
func (p *Progress) set(m map[int]int64, partition int, to int64) {
	wasHeld := p.fetchedTo[partition] > p.committedTo[partition]
	m[partition] = max(m[partition], to)
	switch isHeld := p.fetchedTo[partition] > p.committedTo[partition]; {
	case isHeld && !wasHeld:
		p.heldParts++
	case wasHeld && !isHeld:
		p.heldParts--
	}
}

func (p *Progress) fetched(partition int, offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.heldParts == 0 {
		p.heldSince = p.now()
	}
	p.set(p.fetchedTo, partition, offset+1)
}

// committed notes a commit of msgs: progress, so the clock of the
// messages still held (a pipelined consumer fetches ahead) starts again.
func (p *Progress) committed(msgs []kafka.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range msgs {
		p.set(p.committedTo, msgs[i].Partition, msgs[i].Offset+1)
	}
	p.lastCommit = p.now()
	p.heldSince = p.lastCommit
}

// Live reports an error when the consumer is stalled: it has held fetched
// messages for longer than the stall timeout without committing.
func (p *Progress) Live(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stall == 0 || p.heldParts == 0 {
		return nil
	}
	if held := p.now().Sub(p.heldSince); held > p.stall {
		last := "never"
		if !p.lastCommit.IsZero() {
			last = p.now().Sub(p.lastCommit).Round(time.Second).String() + " ago"
		}
		var n int64
		for part, to := range p.fetchedTo {
			n += max(to-p.committedTo[part], 0)
		}
		return fmt.Errorf("stalled: %d messages fetched and not committed for %v, more than -stall-timeout %v; last commit %s",
			n, held.Round(time.Second), p.stall, last)
	}
	return nil
}
