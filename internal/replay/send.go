// Package replay feeds the pipeline with recorded or synthetic traffic. A
// Sender produces JSON-lines request events to the requests topic, keyed
// site|visitor-source so that each visitor's events share a partition, as
// the detectors need; Generate writes synthetic traffic (internal/traffic)
// as such lines. cmd/replay is the operator's command; make demo calls the
// package in-process.
package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// Limits and defaults of sending.
const (
	// DefaultBatch is the default number of events per WriteMessages call:
	// large enough that kafka-go sends full batches, small enough that
	// rate limiting and progress stay smooth.
	DefaultBatch = 4096
	// MaxBatch bounds Config.Batch, and so the memory a Sender holds.
	MaxBatch = 1 << 20
	// MaxLine is the longest line read: kafka-go's default BatchBytes
	// (1 MiB), which a message and its key must fit, so a longer line could
	// never be produced.
	MaxLine = 1 << 20
	// MaxWarnings is how many unkeyed lines (malformed, or without the
	// identity's source) a Sender passes to Config.Warn; later ones are
	// only counted.
	MaxWarnings = 5
	// MinRate is the lowest Config.Rate but 0: one event in 1000 s. Lower
	// rates would overflow the pacer's schedule.
	MinRate = 0.001
	// maxLag is how far behind its schedule a rate-limited Sender may fall
	// (a slow broker) before it starts a new schedule instead of bursting
	// to catch up.
	maxLag = time.Second
)

// ErrLineTooLong is an input line longer than MaxLine.
var ErrLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLine)

// MessageWriter is what a Sender needs of a Kafka producer: a *kafka.Writer
// in its default, synchronous mode (see NewKafkaWriter). WriteMessages must
// be done with msgs when it returns nil: the Sender reuses their memory.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Config says how a Sender decodes, keys and paces events.
type Config struct {
	// Fields and Identity must be the detectors' -fields and -identity, so
	// that keys follow their notion of a visitor.
	Fields   features.FieldMap
	Identity features.IdentityMode
	// Rate is the most events per second sent, on average; 0 is as fast as
	// the writer takes them.
	Rate float64
	// Batch is the number of events per WriteMessages call, at most
	// MaxBatch; 0 is DefaultBatch. With a Rate, a call holds at most a
	// tenth of a second's events, so that sending is smooth.
	Batch int
	// Progress is how often OnProgress is called, at most once per write;
	// 0 never.
	Progress   time.Duration
	OnProgress func(Stats)
	// Warn, if set, receives the first MaxWarnings lines sent without a
	// key.
	Warn func(*LineError)

	clock clock // nil: the wall clock; tests set a virtual one
}

// DefaultConfig is Logpush events, visitors by IP, no rate limit.
func DefaultConfig() Config {
	return Config{Fields: features.DefaultFieldMap(), Batch: DefaultBatch, Progress: 5 * time.Second}
}

// RegisterFlags registers -fields, -identity, -rate, -batch and -progress,
// with c's values as defaults (call DefaultConfig first).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(&c.Fields, "fields", "JSON field `map` of the events, as the detectors' -fields: a preset (logpush, ecs, nginx) and/or name=key pairs, e.g. \"ecs,site=labels.site\"")
	fs.Var(&c.Identity, "identity", "visitor identity `mode` of the detectors' -identity, which picks the key: ip (the default) and ip+ua key on site|ClientIP, ja3 and ja4 on site|fingerprint")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "most events sent per second, on average; 0 (the default) is as fast as the brokers acknowledge them")
	fs.IntVar(&c.Batch, "batch", c.Batch, fmt.Sprintf("events per write to Kafka, up to %d; larger for brokers far away (with -rate, at most a tenth of a second's worth)", MaxBatch))
	fs.DurationVar(&c.Progress, "progress", c.Progress, "interval of progress lines on stderr; 0 disables them")
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	switch {
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0 || (c.Rate > 0 && c.Rate < MinRate):
		return fmt.Errorf("-rate: %v events/s, want 0 (no limit) or at least %v", c.Rate, MinRate)
	case c.Batch < 0 || c.Batch > MaxBatch:
		return fmt.Errorf("-batch: %d, want 1 to %d (0 for %d)", c.Batch, MaxBatch, DefaultBatch)
	case c.Progress < 0:
		return fmt.Errorf("-progress: %v, want 0 (none) or more", c.Progress)
	case c.Identity > features.IdentityJA4:
		return fmt.Errorf("-identity: %w %s", features.ErrIdentityMode, c.Identity)
	}
	if err := c.Fields.Validate(); err != nil {
		return fmt.Errorf("-fields: %w", err)
	}
	return nil
}

// Stats counts what a Sender sent.
type Stats struct {
	// Events is the number of messages the writer acknowledged, one per
	// non-empty line, malformed ones included.
	Events int64
	// Malformed counts the Events that did not decode, sent unchanged
	// without a key so that the pipeline dead-letters them.
	Malformed int64
	// Unkeyed counts the Events that decoded but lack what the identity
	// needs (a JA3 or JA4 fingerprint), sent without a key.
	Unkeyed int64
	// Empty counts the empty (or blank) lines, which are skipped.
	Empty int64
	// Elapsed is the time since sending started.
	Elapsed time.Duration
}

// Rate returns the events sent per second.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Events) / s.Elapsed.Seconds()
}

// String summarises s in one line.
func (s Stats) String() string {
	return fmt.Sprintf("%d events (%d malformed, %d without identity, %d empty lines skipped) in %.2f s: %.0f events/s",
		s.Events, s.Malformed, s.Unkeyed, s.Empty, s.Elapsed.Seconds(), s.Rate())
}

// LineError is a problem with one input line.
type LineError struct {
	Source string // the input's name, e.g. a file name or "-"
	Line   int64  // from 1
	Err    error
}

// Error returns "source:line: reason", the form editors and grep -n use.
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Source, e.Line, e.Err) }

// Unwrap returns the reason.
func (e *LineError) Unwrap() error { return e.Err }

// AppendKey appends ev's partition key to dst: the site, '|' and the
// visitor's source under mode, the client IP for ip and ip+ua (so all of
// an IP's visitors share a partition, and the key needs no secret) or the
// fingerprint for ja3 and ja4. Any function of the visitor would do; this
// one is readable in kcat and the same for every producer. It returns dst
// unchanged and features.ErrNoClientIP or features.ErrNoFingerprint when ev
// lacks the source.
func AppendKey(dst []byte, ev *features.Event, mode features.IdentityMode) ([]byte, error) {
	switch mode {
	case features.IdentityJA3, features.IdentityJA4:
		fp := ev.JA3
		if mode == features.IdentityJA4 {
			fp = ev.JA4
		}
		if len(fp) == 0 {
			return dst, features.ErrNoFingerprint
		}
		dst = append(append(append(dst, ev.Site...), '|'), fp...)
	default:
		if !ev.ClientIP.IsValid() {
			return dst, features.ErrNoClientIP
		}
		// The decoder unmaps IPv4-mapped addresses, as the visitor id
		// does: one client, one key.
		dst = ev.ClientIP.AppendTo(append(append(dst, ev.Site...), '|'))
	}
	return dst, nil
}

// Sender sends JSON-lines inputs to a MessageWriter, one message per
// non-empty line, in input order, keyed by AppendKey. A line that does not
// decode is sent unchanged without a key, for the pipeline to dead-letter:
// nothing is dropped. It is not safe for concurrent use.
//
// A goroutine reads and decodes the next write's lines while the writer
// waits for the brokers: one write at a time keeps the input order, and
// the read-ahead still overlaps the two costs (see BenchmarkSend).
type Sender struct {
	cfg   Config
	w     MessageWriter
	clock clock
	batch int    // events per write
	pace  *pacer // nil without a rate
	// free holds the two chunks, each being filled or written in turn.
	free chan *chunk

	// The reading goroutine's: one Send's reader finishes before the next
	// starts.
	dec    *features.Decoder
	ev     features.Event
	long   []byte // a line longer than the read buffer
	warned int    // lines passed for Warn so far

	// The calling goroutine's.
	stats           Stats // Elapsed unset; see Stats
	started         bool
	start, reported time.Time
}

// chunk is the lines of one write, from the reading goroutine to the
// writing one.
type chunk struct {
	msgs     []kafka.Message
	arena    []byte // the keys and values of msgs
	source   string
	first    int64 // line number of msgs[0]
	last     int64 // line number of the last line read
	empty    int64 // blank lines skipped
	bad      int64 // malformed lines in msgs
	unkeyed  int64 // decoded lines without the identity's source in msgs
	warnings []*LineError
	err      error // a read error after msgs, which ends the input
}

func (c *chunk) reset(source string) {
	*c = chunk{msgs: c.msgs[:0], arena: c.arena[:0], warnings: c.warnings[:0], source: source}
}

// NewSender returns a Sender of cfg's events to w.
func NewSender(cfg Config, w MessageWriter) (*Sender, error) {
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dec, err := features.NewDecoder(cfg.Fields)
	if err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, w: w, clock: cfg.clock, dec: dec, batch: cfg.Batch, free: make(chan *chunk, 2)}
	if s.clock == nil {
		s.clock = wallClock{}
	}
	if cfg.Rate > 0 {
		s.pace = &pacer{clock: s.clock, rate: cfg.Rate}
		// A tenth of a second's events per write, so that the rate holds
		// over short spans too.
		s.batch = int(min(float64(s.batch), max(1, math.Ceil(cfg.Rate/10))))
	}
	for range cap(s.free) {
		s.free <- &chunk{msgs: make([]kafka.Message, 0, s.batch)}
	}
	return s, nil
}

// Send sends every line of r, named source in errors and warnings, and
// returns once the writer has acknowledged all of them, or after the first
// read or write error, or when ctx is done. Stats count what was sent
// before an error. After an error the Sender must not be used again, but
// for Stats.
func (s *Sender) Send(ctx context.Context, source string, r io.Reader) error {
	if !s.started {
		s.started = true
		s.start = s.clock.Now()
		s.reported = s.start
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan *chunk, cap(s.free))
	go s.read(ctx, source, r, full)
	var err error
	for c := range full { // until the reader is done, so that it never outlives Send
		if err == nil {
			if err = s.write(ctx, c); err != nil {
				cancel() // the reader stops at its next chunk
			}
		}
		s.free <- c
	}
	if err == nil {
		// The reader stops early when the caller cancels, even between
		// writes that all succeeded: the input was not all sent.
		err = ctx.Err()
	}
	return err
}

// read reads r into chunks, sent to full in order, then closes full. It
// stops early when ctx is done.
func (s *Sender) read(ctx context.Context, source string, r io.Reader, full chan<- *chunk) {
	defer close(full)
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		c    *chunk
		line int64
	)
	for {
		if c == nil {
			if ctx.Err() != nil { // select would pick at random
				return
			}
			select {
			case c = <-s.free:
				c.reset(source)
			case <-ctx.Done():
				return
			}
		}
		text, err := s.readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		c.last = line
		if err != nil {
			c.err = fmt.Errorf("reading %s:%d: %w", source, line, err)
			break
		}
		if len(bytes.TrimSpace(text)) == 0 {
			c.empty++
			continue
		}
		if len(c.msgs) == 0 {
			c.first = line
		}
		s.add(c, line, text)
		if len(c.msgs) == s.batch {
			full <- c
			c = nil
		}
	}
	if c != nil {
		full <- c // what is left, its blank lines, or its error
	}
}

// add appends the message of one line to c.
func (s *Sender) add(c *chunk, line int64, text []byte) {
	at := len(c.arena)
	c.arena = append(c.arena, text...)
	// Capped, so that appending the key cannot write into the value.
	c.msgs = append(c.msgs, kafka.Message{Value: c.arena[at:len(c.arena):len(c.arena)]})
	err := s.dec.Decode(text, &s.ev)
	if err != nil {
		c.bad++
	} else {
		at = len(c.arena)
		if c.arena, err = AppendKey(c.arena, &s.ev, s.cfg.Identity); err != nil {
			c.unkeyed++
		} else {
			c.msgs[len(c.msgs)-1].Key = c.arena[at:len(c.arena):len(c.arena)]
			return
		}
	}
	if s.warned < MaxWarnings {
		c.warnings = append(c.warnings, &LineError{Source: c.source, Line: line, Err: err})
	}
	s.warned++
}

// write sends the messages of c, when the pacer allows, and counts them.
func (s *Sender) write(ctx context.Context, c *chunk) error {
	if s.cfg.Warn != nil {
		for _, w := range c.warnings {
			s.cfg.Warn(w)
		}
	}
	s.stats.Empty += c.empty
	if n := len(c.msgs); n > 0 {
		if err := s.writeMessages(ctx, c); err != nil {
			return err
		}
		s.stats.Events += int64(n)
		s.stats.Malformed += c.bad
		s.stats.Unkeyed += c.unkeyed
		if s.cfg.Progress > 0 && s.cfg.OnProgress != nil {
			if now := s.clock.Now(); now.Sub(s.reported) >= s.cfg.Progress {
				s.reported = now
				s.cfg.OnProgress(s.Stats())
			}
		}
	}
	return c.err
}

func (s *Sender) writeMessages(ctx context.Context, c *chunk) error {
	n := len(c.msgs)
	if err := ctx.Err(); err != nil { // a writer may not look at ctx
		return fmt.Errorf("sending %s:%d-%d: %w", c.source, c.first, c.last, err)
	}
	if s.pace != nil {
		if err := s.pace.wait(ctx, n); err != nil {
			return fmt.Errorf("waiting to send %s:%d-%d: %w", c.source, c.first, c.last, err)
		}
	}
	err := s.w.WriteMessages(ctx, c.msgs...)
	if err == nil {
		return nil
	}
	// Some partitions may have taken their batches: count those, and
	// report one error rather than kafka-go's one per message.
	if werrs, ok := errors.AsType[kafka.WriteErrors](err); ok && len(werrs) == n {
		failed := werrs.Count()
		s.stats.Events += int64(n - failed)
		for _, e := range werrs {
			if e != nil {
				err = e
				break
			}
		}
		return fmt.Errorf("sending %s:%d-%d: %d of %d events failed: %w", c.source, c.first, c.last, failed, n, err)
	}
	return fmt.Errorf("sending %s:%d-%d (%d events): %w", c.source, c.first, c.last, n, err)
}

// readLine returns the next line without its "\n" or "\r\n", valid until
// the next call, or io.EOF after the last line. A last line without a
// newline counts.
func (s *Sender) readLine(br *bufio.Reader) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) && len(s.long) <= MaxLine+1 {
			b, err = br.ReadSlice('\n')
			s.long = append(s.long, b...)
		}
		b = s.long
	}
	switch {
	case errors.Is(err, io.EOF) && len(b) > 0: // a last line without a newline
	case errors.Is(err, bufio.ErrBufferFull): // stopped reading at MaxLine
		return nil, ErrLineTooLong
	case err != nil:
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > MaxLine {
		return nil, ErrLineTooLong
	}
	return b, nil
}

// Stats returns what has been sent so far.
func (s *Sender) Stats() Stats {
	st := s.stats
	if s.started {
		st.Elapsed = s.clock.Now().Sub(s.start)
	}
	return st
}

// Send sends every line of r to w with a new Sender, for a single input.
// Errors and warnings name r by its Name method (an *os.File's) if it has
// one, else "input".
func Send(ctx context.Context, cfg Config, r io.Reader, w MessageWriter) (Stats, error) {
	s, err := NewSender(cfg, w)
	if err != nil {
		return Stats{}, err
	}
	source := "input"
	if n, ok := r.(interface{ Name() string }); ok {
		source = n.Name()
	}
	err = s.Send(ctx, source, r)
	return s.Stats(), err
}

// clock is the time source of a Sender, so that tests of rate limiting and
// progress run on virtual time.
type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pacer spaces writes so that events go out at rate per second on average.
// It keeps an absolute schedule, so that sleeping late does not add up, and
// starts a new one when it falls more than maxLag behind, so that a stalled
// broker is not followed by a burst.
type pacer struct {
	clock clock
	rate  float64
	base  time.Time // start of the schedule
	n     int64     // events scheduled since base
}

// wait returns when n more events may go.
func (p *pacer) wait(ctx context.Context, n int) error {
	now := p.clock.Now()
	due := p.base.Add(time.Duration(float64(p.n) * float64(time.Second) / p.rate))
	if p.base.IsZero() || now.Sub(due) > maxLag {
		p.base, p.n, due = now, 0, now
	}
	p.n += int64(n)
	if d := due.Sub(now); d > 0 {
		return p.clock.Sleep(ctx, d)
	}
	return nil
}
