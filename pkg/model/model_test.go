package model

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/anomalyd/anomalyd/pkg/hbos"
)

func testModel(t testing.TB) *hbos.Model {
	t.Helper()
	m, err := hbos.FitColumns([][]float64{{1, 2, 3, 4, 5}, {2, 2, 2, 3, 9}}, hbos.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKnown(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 10_000
	f := NewKnown(n)
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = rng.Uint64()
		f.Add(ids[i])
	}
	for _, id := range ids {
		if !f.Has(id) {
			t.Fatalf("%x added but not found", id)
		}
	}
	fp := 0
	for range n {
		if f.Has(rng.Uint64()) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Errorf("false positive rate %.3f, want about 0.01", rate)
	}
}

func TestBaselineEncoding(t *testing.T) {
	known := NewKnown(100)
	known.Add(42)
	for _, b := range []*Baseline{{Model: testModel(t), Known: known}, {Model: testModel(t)}} {
		enc, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Baseline
		if err := got.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		if got.Model.Features() != 2 || got.Model.Threshold() != b.Model.Threshold() || (got.Known == nil) != (b.Known == nil) {
			t.Errorf("decoded %+v, want %+v", got, b)
		}
		if got.Known != nil && (!got.Known.Has(42) || got.Known.Has(43) && got.Known.Has(44) && got.Known.Has(45)) {
			t.Error("known visitors did not survive the encoding")
		}
		// Every truncation and every flipped byte is an error, never a
		// panic.
		for i := range enc {
			var x Baseline
			if err := x.UnmarshalBinary(enc[:i]); !errors.Is(err, ErrEncoding) {
				t.Fatalf("truncated to %d bytes: %v", i, err)
			}
			bad := append([]byte(nil), enc...)
			bad[i] ^= 0x40
			if err := x.UnmarshalBinary(bad); !errors.Is(err, ErrEncoding) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	known := NewKnown(10)
	known.Add(7)
	enc, err := (&Baseline{Model: testModel(f), Known: known}).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Baseline
		if err := b.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrEncoding) {
				t.Fatalf("error %v does not wrap ErrEncoding", err)
			}
			return
		}
		if _, err := b.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}
