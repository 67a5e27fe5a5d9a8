package hbos

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkScore scores one sample at a time, cycling through a few dozen
// samples drawn from the training data, so that bin lookups vary but the
// sample is in cache, as a visitor's freshly computed features are.
func BenchmarkScore(b *testing.B) {
	for _, d := range []int{4, 16, 64} {
		for _, bins := range []int{10, AutoBins} {
			name := fmt.Sprintf("features=%d/bins=%s", d, binsName(bins))
			b.Run(name, func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, uint64(d)))
				cols := syntheticColumns(rng, 10000, d)
				cfg := DefaultConfig()
				cfg.Bins = bins
				m, err := FitColumns(cols, cfg)
				if err != nil {
					b.Fatal(err)
				}
				const nSamples = 64
				samples := make([][]float64, nSamples)
				for i := range samples {
					samples[i] = make([]float64, d)
					for j := range samples[i] {
						samples[i][j] = cols[j][rng.IntN(len(cols[j]))]
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				sum := 0.0
				for i := 0; b.Loop(); i++ {
					s, err := m.Score(samples[i%nSamples])
					if err != nil {
						b.Fatal(err)
					}
					sum += s
				}
				if sum == 0 {
					b.Fatal("no scores")
				}
			})
		}
	}
}

func binsName(bins int) string {
	if bins == AutoBins {
		return "auto"
	}
	return fmt.Sprint(bins)
}

// syntheticColumns draws n samples of d features, each a different mix of
// skewed and normal shapes, like per-visitor request features.
func syntheticColumns(rng *rand.Rand, n, d int) [][]float64 {
	cols := make([][]float64, d)
	for j := range cols {
		cols[j] = make([]float64, n)
		for i := range cols[j] {
			if j%2 == 0 {
				cols[j][i] = rng.ExpFloat64() * float64(j+1)
			} else {
				cols[j][i] = rng.NormFloat64() + float64(j)
			}
		}
	}
	return cols
}
