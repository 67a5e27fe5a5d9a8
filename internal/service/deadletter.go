package service

import (
	"context"
	"strconv"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
)

// Headers of a dead-letter message, set by every service that reads a
// topic. The message keeps the original key and value, so that an operator
// can fix and replay it; these say why it was refused and where it came
// from.
const (
	HeaderReason = "anomalyd-reason" // why the message could not be used
	HeaderSource = "anomalyd-source" // topic/partition/offset it was read at
	// HeaderTruncated is set on a dead letter whose value was cut so that
	// it fits the brokers' limit: the value's length before, in bytes.
	HeaderTruncated = "anomalyd-truncated"
)

// Dead-letter reasons of request events, the values of the "reason" label
// of the baseline service's and the detector's dead_letters_total.
const (
	ReasonMalformed = "malformed" // the event does not decode (features.ErrMalformed)
	ReasonIdentity  = "identity"  // it lacks what the visitor identity needs
	ReasonFuture    = "future"    // its time is beyond -max-event-ahead (ErrFuture)
	ReasonTooOld    = "too_old"   // its time is beyond -max-event-age (ErrTooOld)
)

// EventReasons are the dead-letter reasons of request events, for
// metrics that start every label at 0.
func EventReasons() []string {
	return []string{ReasonMalformed, ReasonIdentity, ReasonFuture, ReasonTooOld}
}

// MaxReason is the longest reason header a dead letter gets: a parser's
// message can quote the rest of a hostile value, which the dead letter
// keeps anyway.
const MaxReason = 512

// DeadLetter is the dead-letter message of m, refused for reason, whose
// message is cut to MaxReason bytes.
func DeadLetter(m kafka.Message, reason error) kafka.Message {
	why := reason.Error()
	if len(why) > MaxReason {
		cut := MaxReason - len("...")
		for cut > 0 && !utf8.RuneStart(why[cut]) {
			cut--
		}
		why = why[:cut] + "..."
	}
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: HeaderReason, Value: []byte(why)},
		{Key: HeaderSource, Value: []byte(m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10))},
	}}
}

// DeadLetterWriter writes dead letters, first cutting the value of any
// that would not fit in a produce request of the writer's BatchBytes
// (KafkaConfig.BatchBytes): a refused event a little under the brokers'
// limit becomes a little over it with its headers, and the broker would
// refuse it however often it was retried, holding up every event behind
// it. The cut value keeps its start, and HeaderTruncated says how long it
// was.
type DeadLetterWriter struct{ *kafka.Writer }

// WriteMessages fits msgs to the writer's limit, in place, and writes them.
func (w DeadLetterWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	for i := range msgs {
		fitDeadLetter(&msgs[i], w.BatchBytes)
	}
	return w.Writer.WriteMessages(ctx, msgs...)
}

// messageSize bounds kafka-go's estimate of m's size in a produce request
// from above: 22 bytes of framing and at most 10 of varints per header.
func messageSize(m *kafka.Message) int64 {
	n := 22 + 10 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// fitDeadLetter cuts m's value so that messageSize(m) is at most limit,
// adding HeaderTruncated, if it is over.
func fitDeadLetter(m *kafka.Message, limit int64) {
	over := messageSize(m) - limit
	if over <= 0 {
		return
	}
	orig := len(m.Value)
	h := kafka.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(orig))}
	over += int64(10 + len(h.Key) + len(h.Value))
	m.Value = m.Value[:max(int64(orig)-over, 0)]
	m.Headers = append(m.Headers, h)
}
