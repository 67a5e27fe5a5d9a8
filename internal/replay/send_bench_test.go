package replay

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

type discardWriter struct{}

func (discardWriter) WriteMessages(context.Context, ...kafka.Message) error { return nil }

// BenchmarkSend measures a Sender: reading, decoding and keying alone
// (discard), and producing to an in-process broker with acknowledgements
// (kfake, a lower bound on a real cluster's figure: the broker shares the
// CPU). One op is one event.
func BenchmarkSend(b *testing.B) {
	input := generated(b, 50_000, true)
	b.Run("writer=discard", func(b *testing.B) {
		benchSend(b, input, discardWriter{}, DefaultBatch)
	})
	for _, batch := range []int{1024, DefaultBatch, 16384} {
		b.Run(fmt.Sprintf("writer=kfake/batch=%d", batch), func(b *testing.B) {
			k := testenv.Kafka(b, "requests")
			w := NewKafkaWriter(k.Brokers(), "requests", batch)
			defer w.Close()
			benchSend(b, input, w, batch)
		})
	}
}

func benchSend(b *testing.B, input []byte, w MessageWriter, batch int) {
	cfg := DefaultConfig()
	cfg.Batch = batch
	s, err := NewSender(cfg, w)
	if err != nil {
		b.Fatal(err)
	}
	lines := int64(bytes.Count(input, []byte("\n")))
	b.SetBytes(int64(len(input)) / lines)
	b.ReportAllocs()
	b.ResetTimer()
	// The input is sent whole as often as b.N needs, then in part.
	for left := int64(b.N); left > 0; {
		in := input
		if left < lines {
			in = input[:nthLine(input, int(left))]
		}
		if err := s.Send(b.Context(), "input", bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
		left -= min(left, lines)
	}
	b.StopTimer()
	st := s.Stats()
	if st.Events != int64(b.N) {
		b.Fatalf("sent %d events, want %d", st.Events, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// nthLine returns the offset just past the n-th newline of data.
func nthLine(data []byte, n int) int {
	off := 0
	for range n {
		off += bytes.IndexByte(data[off:], '\n') + 1
	}
	return off
}
