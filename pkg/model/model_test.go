package model

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
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
	starts := NewStarts()
	for i := range 10 {
		starts.Add(uint64(i % 3))
	}
	early := &Early{Requests: 2, Model: testModel(t), Starts: NewStarts()}
	early.Starts.Add(9)
	shadows := []Shadow{{Name: "bins-20", Model: testModel(t)}, {Name: "c", Model: testModel(t)}}
	shadows[1].Model.SetThreshold(7)
	for _, b := range []*Baseline{{Model: testModel(t), Known: known, Starts: starts, Early: early, Shadows: shadows}, {Model: testModel(t), Starts: starts}, {Model: testModel(t)}} {
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
		if (got.Starts == nil) != (b.Starts == nil) {
			t.Errorf("starts %v, want %v", got.Starts, b.Starts)
		} else if got.Starts != nil {
			for shape, want := range map[uint64]float64{0: 4.5 / 11, 1: 3.5 / 11, 7: 0.5 / 11} {
				if s := got.Starts.Share(shape); s != want {
					t.Errorf("share of shape %d: %v, want %v", shape, s, want)
				}
			}
		}
		if (got.Early == nil) != (b.Early == nil) {
			t.Errorf("early part %+v, want %+v", got.Early, b.Early)
		} else if e := got.Early; e != nil {
			if e.Requests != 2 || e.Model.Threshold() != early.Model.Threshold() || e.Starts.Visits() != 1 || e.Starts.Share(9) != 1.5/2 {
				t.Errorf("early part decoded as %d requests, threshold %v, %d visits, share %v", e.Requests, e.Model.Threshold(), e.Starts.Visits(), e.Starts.Share(9))
			}
		}
		if len(got.Shadows) != len(b.Shadows) {
			t.Errorf("%d shadows, want %d", len(got.Shadows), len(b.Shadows))
		}
		for i := range min(len(got.Shadows), len(b.Shadows)) {
			if g, w := got.Shadows[i], b.Shadows[i]; g.Name != w.Name || g.Model.Threshold() != w.Model.Threshold() {
				t.Errorf("shadow %d: %s with threshold %v, want %s with %v", i, g.Name, g.Model.Threshold(), w.Name, w.Model.Threshold())
			}
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

// TestBaselineEncodingV1: a baseline of version 1, without starts, still
// decodes.
func TestBaselineEncodingV1(t *testing.T) {
	m, err := testModel(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	enc := append([]byte(magicV1), binary.LittleEndian.AppendUint32(nil, uint32(len(m)))...)
	enc = append(enc, m...)
	enc = binary.LittleEndian.AppendUint32(enc, 0) // no known visitors
	enc = binary.LittleEndian.AppendUint32(enc, crc32.Checksum(enc, castagnoli))
	var got Baseline
	if err := got.UnmarshalBinary(enc); err != nil || got.Model == nil || got.Starts != nil {
		t.Errorf("version 1: %+v, %v", got, err)
	}
}

// TestBaselineEncodingV2: a baseline of version 2, without an early part,
// still decodes, with its starts.
func TestBaselineEncodingV2(t *testing.T) {
	starts := NewStarts()
	starts.Add(3)
	enc, err := (&Baseline{Model: testModel(t), Starts: starts}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Version 4 without its early part and shadows (empty ones: 4 bytes
	// of length each) is version 2 under another magic.
	v2 := append([]byte(magicV2), enc[len(magic):len(enc)-12]...)
	v2 = binary.LittleEndian.AppendUint32(v2, crc32.Checksum(v2, castagnoli))
	var got Baseline
	if err := got.UnmarshalBinary(v2); err != nil || got.Model == nil || got.Starts == nil || got.Starts.Visits() != 1 || got.Early != nil {
		t.Errorf("version 2: %+v, %v", got, err)
	}
}

// TestBaselineEncodingV3: a baseline of version 3, without shadows,
// still decodes, with its early part.
func TestBaselineEncodingV3(t *testing.T) {
	early := &Early{Requests: 2, Model: testModel(t), Starts: NewStarts()}
	enc, err := (&Baseline{Model: testModel(t), Early: early}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Version 4 without its shadows (4 bytes of length) is version 3
	// under another magic.
	v3 := append([]byte(magicV3), enc[len(magic):len(enc)-8]...)
	v3 = binary.LittleEndian.AppendUint32(v3, crc32.Checksum(v3, castagnoli))
	var got Baseline
	if err := got.UnmarshalBinary(v3); err != nil || got.Early == nil || got.Early.Requests != 2 || got.Shadows != nil {
		t.Errorf("version 3: %+v, %v", got, err)
	}
}

// TestStartsKeepsTheCommonest: beyond MaxStartShapes, the commonest shapes
// are kept, and the encoding does not depend on the map's order.
func TestStartsKeepsTheCommonest(t *testing.T) {
	s := NewStarts()
	for i := range uint64(MaxStartShapes + 10) {
		s.Add(i)
	}
	s.Add(5)
	enc := s.appendBinary(nil)
	if again := s.appendBinary(nil); string(again) != string(enc) {
		t.Fatal("two encodings of the same starts differ")
	}
	got, err := decodeStarts(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.shapes) != MaxStartShapes || got.shapes[5] != 2 || got.Visits() != MaxStartShapes+11 {
		t.Errorf("%d shapes, shape 5 of %d visits, %d visits", len(got.shapes), got.shapes[5], got.Visits())
	}
}

func FuzzUnmarshal(f *testing.F) {
	known := NewKnown(10)
	known.Add(7)
	starts := NewStarts()
	starts.Add(3)
	enc, err := (&Baseline{Model: testModel(f), Known: known, Starts: starts}).MarshalBinary()
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
