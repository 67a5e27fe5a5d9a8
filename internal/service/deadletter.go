package service

// Headers of a dead-letter message, set by every service that reads a
// topic. The message keeps the original key and value, so that an operator
// can fix and replay it; these say why it was refused and where it came
// from.
const (
	HeaderReason = "anomalyd-reason" // why the message could not be used
	HeaderSource = "anomalyd-source" // topic/partition/offset it was read at
)
