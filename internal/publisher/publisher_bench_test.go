package publisher

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// BenchmarkPrepare measures the publisher's CPU per score record: decode,
// validate, select, and encode the detections (one score in ten is above
// its threshold), without the I/O. The detector's records carry 9
// features (10 for fingerprint identities).
func BenchmarkPrepare(b *testing.B) {
	for _, features := range []int{4, 9, 16} {
		b.Run(fmt.Sprintf("features=%d", features), func(b *testing.B) {
			const n = 1000
			msgs := make([]kafka.Message, n)
			for i := range msgs {
				s := testScore("a.example", uint64(i), time.Duration(i)*time.Millisecond, 5)
				if i%10 == 0 {
					s.Score = 15
				}
				s.Features = s.Features[:0]
				for f := range features {
					s.Features = append(s.Features, records.Contribution{Feature: fmt.Sprintf("feature_%02d", f), Value: float64(f), Contribution: float64(f) / 3})
				}
				js, err := s.AppendJSON(nil)
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = kafka.Message{Value: js}
			}
			p := New(DefaultConfig(), nil, nil, nil, nil, NewMetrics(nil), nil)
			p.now = func() time.Time { return t0 }
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.prepare(msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/score")
		})
	}
}
