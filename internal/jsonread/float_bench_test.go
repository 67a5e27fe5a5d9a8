package jsonread

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkFloat parses numbers in encoding/json's shortest forms, as score
// records carry their scores and thresholds: a third short (19.5, 2.83),
// the rest of 15 to 17 significant digits, a fifth of them negative.
func BenchmarkFloat(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	nums := make([]Value, 1024)
	for i := range nums {
		x := rng.Float64() * 30
		if i%3 == 0 {
			x = float64(int(x*100)) / 100
		}
		if i%5 == 0 {
			x = -x
		}
		nums[i] = Value(strconv.AppendFloat(nil, x, 'f', -1, 64))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := nums[i%len(nums)].Float(); err != nil {
			b.Fatal(err)
		}
	}
}
