package features

import (
	"errors"
	"flag"
	"fmt"
	"iter"
	"math"
	"time"
)

// Window is the sliding window of a visitor's behaviour, in event time (the
// request's own timestamp, so a replayed log behaves like live traffic): the
// newest Buckets buckets of Width each. A bucket is identified by its index,
// the Unix time of its start divided by Width, which is also the bucket of a
// pkg/keys key.
type Window struct {
	Buckets int
	Width   time.Duration
}

// DefaultWindow is ten buckets of one minute.
func DefaultWindow() Window { return Window{Buckets: 10, Width: time.Minute} }

// RegisterFlags registers the window's flags with their defaults.
func (w *Window) RegisterFlags(fs *flag.FlagSet) {
	def := DefaultWindow()
	fs.IntVar(&w.Buckets, "window-buckets", def.Buckets, "number of buckets in a visitor's sliding window")
	fs.DurationVar(&w.Width, "window-bucket-width", def.Width, "width of one window bucket, a whole number of seconds; the window spans buckets times this")
}

// ErrWindow is an invalid window configuration.
var ErrWindow = errors.New("invalid window")

// Validate reports an unusable window.
func (w Window) Validate() error {
	switch {
	case w.Buckets < 1 || w.Buckets > 1440:
		return fmt.Errorf("%w: buckets must be 1 to 1440, got %d", ErrWindow, w.Buckets)
	case w.Width < time.Second || w.Width%time.Second != 0:
		return fmt.Errorf("%w: bucket width must be a whole number of seconds, at least 1s, got %v", ErrWindow, w.Width)
	}
	return nil
}

// Span is the length of the window: Buckets * Width.
func (w Window) Span() time.Duration { return time.Duration(w.Buckets) * w.Width }

// Bucket returns the index of the bucket holding t. Times before 1970 or
// beyond the uint32 range of bucket indexes clamp to its ends.
func (w Window) Bucket(t time.Time) uint32 {
	b := t.Unix() / int64(w.Width/time.Second)
	return uint32(max(0, min(b, math.MaxUint32)))
}

// Start returns the start time of bucket b.
func (w Window) Start(b uint32) time.Time {
	return time.Unix(int64(b)*int64(w.Width/time.Second), 0).UTC()
}

// First returns the oldest bucket of the window whose newest bucket is
// newest.
func (w Window) First(newest uint32) uint32 {
	return newest - min(newest, uint32(w.Buckets-1))
}

// Range yields the buckets of the window whose newest bucket is newest,
// oldest first.
func (w Window) Range(newest uint32) iter.Seq[uint32] {
	return func(yield func(uint32) bool) {
		for b := w.First(newest); yield(b); b++ {
			if b == newest { // not b <= newest: newest may be MaxUint32
				return
			}
		}
	}
}

// Late reports whether bucket b is too old for the window whose newest
// bucket is newest: such an event is counted and dropped. Events in the
// window, however late, are accepted, and so are events newer than newest,
// which move the window.
func (w Window) Late(b, newest uint32) bool { return b < w.First(newest) }
