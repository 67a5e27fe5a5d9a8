package hbos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"
)

func TestEncodingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cols := syntheticColumns(rng, 3000, 6)
	for _, cfg := range testConfigs() {
		for _, names := range [][]string{nil, {"requests", "paths", "", "uas", "referers", "ñ"}} {
			m := mustFit(t, cols, cfg)
			if names != nil {
				if err := m.SetNames(names); err != nil {
					t.Fatal(err)
				}
			}
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Model
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("%+v: UnmarshalBinary: %v", cfg, err)
			}
			if got.Config() != cfg || got.Threshold() != m.Threshold() || !equalStrings(got.Names(), m.Names()) {
				t.Fatalf("%+v: decoded config %+v threshold %v names %q", cfg, got.Config(), got.Threshold(), got.Names())
			}
			// Decoded models score bit-for-bit like the original, inside,
			// at the edges and outside the range.
			x := make([]float64, 6)
			for i := range 500 {
				for j := range x {
					x[j] = cols[j][i] * (0.5 + rng.Float64())
				}
				if a, b := mustScore(t, m, x...), mustScore(t, &got, x...); a != b {
					t.Fatalf("%+v: decoded model scores %v, original %v", cfg, b, a)
				}
			}
			again, _ := got.MarshalBinary()
			if !bytes.Equal(again, b) {
				t.Fatalf("%+v: re-encoding differs", cfg)
			}
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// reseal replaces the trailing checksum so that a test can reach the checks
// behind it.
func reseal(b []byte) []byte {
	body := b[:len(b)-crcSize]
	return binary.LittleEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, castagnoli))
}

func TestUnmarshalRejectsCorruptInput(t *testing.T) {
	m := mustFit(t, [][]float64{{1, 2, 3, 4, 5}, {2, 2, 2, 3, 9}}, DefaultConfig())
	good, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return reseal(b)
	}
	putF64 := func(off int, v float64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], math.Float64bits(v)) }
	}
	const firstEdge = headerSize + 4 // first feature's nbins, then edges
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", good[:10]},
		{"truncated body", reseal(good[:len(good)-12])},
		{"flipped bit", func() []byte { b := append([]byte(nil), good...); b[30] ^= 1; return b }()},
		{"bad magic", edit(func(b []byte) { b[0] = 'X' })},
		{"future version", edit(func(b []byte) { b[4] = 2 })},
		{"unknown flag", edit(func(b []byte) { b[5] = 0x80 })},
		{"zero bins config", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[6:], 0) })},
		{"NaN alpha", edit(putF64(10, math.NaN()))},
		{"NaN threshold", edit(putF64(34, math.NaN()))},
		{"zero features", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[42:], 0) })},
		{"huge feature count", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[42:], math.MaxUint32) })},
		{"huge bin count", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[headerSize:], math.MaxUint32) })},
		{"zero bin count", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[headerSize:], 0) })},
		{"NaN edge", edit(putF64(firstEdge, math.NaN()))},
		{"decreasing edges", edit(putF64(firstEdge+8, -100))},
		{"negative density", edit(putF64(firstEdge+11*8, -1))},
		{"infinite density", edit(putF64(firstEdge+11*8, math.Inf(1)))},
		{"trailing bytes", reseal(append(append([]byte(nil), good[:len(good)-crcSize]...), 0, 0, 0, 0, 0))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := *m
			err := got.UnmarshalBinary(tc.data)
			if !errors.Is(err, ErrEncoding) {
				t.Fatalf("err = %v, want ErrEncoding", err)
			}
			t.Log(err)
			if got.Threshold() != m.Threshold() || got.Features() != m.Features() {
				t.Errorf("failed decode changed the model")
			}
		})
	}
}

// FuzzUnmarshal feeds corrupt encodings, both as they come (mostly stopped by
// the checksum) and resealed with a valid checksum (reaching the parser). A
// decode must never panic, and what decodes must score without panicking.
func FuzzUnmarshal(f *testing.F) {
	for _, cfg := range testConfigs() {
		m, err := FitColumns([][]float64{{1, 2, 3, 4, 5, 6}, {0, 0, 0, 1, 1, 9}}, cfg)
		if err != nil {
			f.Fatal(err)
		}
		_ = m.SetNames([]string{"a", "b"})
		b, _ := m.MarshalBinary()
		f.Add(b, false)
		f.Add(b[:len(b)/2], true)
	}
	f.Fuzz(func(t *testing.T, data []byte, resealed bool) {
		if resealed && len(data) >= crcSize {
			data = reseal(data)
		}
		var m Model
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrEncoding) {
				t.Fatalf("error %v does not wrap ErrEncoding", err)
			}
			return
		}
		x := make([]float64, m.Features())
		for _, v := range []float64{-1e300, -1, 0, 0.5, 1, 3, 1e300} {
			for j := range x {
				x[j] = v
			}
			if _, err := m.Score(x); err != nil {
				t.Fatalf("decoded model cannot score %v: %v", x, err)
			}
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decode then encode changed the bytes")
		}
	})
}
