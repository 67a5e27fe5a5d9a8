package service

import (
	"strconv"

	"github.com/segmentio/kafka-go"
)

// Headers of a dead-letter message, set by every service that reads a
// topic. The message keeps the original key and value, so that an operator
// can fix and replay it; these say why it was refused and where it came
// from.
const (
	HeaderReason = "anomalyd-reason" // why the message could not be used
	HeaderSource = "anomalyd-source" // topic/partition/offset it was read at
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

// DeadLetter is the dead-letter message of m, refused for reason.
func DeadLetter(m kafka.Message, reason error) kafka.Message {
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: HeaderReason, Value: []byte(reason.Error())},
		{Key: HeaderSource, Value: []byte(m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10))},
	}}
}
