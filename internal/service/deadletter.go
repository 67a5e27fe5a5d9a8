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

// DeadLetter is the dead-letter message of m, refused for reason.
func DeadLetter(m kafka.Message, reason error) kafka.Message {
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: HeaderReason, Value: []byte(reason.Error())},
		{Key: HeaderSource, Value: []byte(m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10))},
	}}
}
