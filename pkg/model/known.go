package model

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Known is a set of visitor ids: a Bloom filter of about 10 bits an id,
// false positives about 1%, never a false negative. Visitor ids are keyed
// hashes, evenly spread, so the filter probes them directly. It is safe
// for concurrent reads once built.
//
// Its encoding: uint32 number of 64-bit words w (at least 1), 1 byte of
// probes k (1 to 16), then w words.
type Known struct {
	words  []uint64
	probes uint8
}

// knownProbes is the probes of a filter of 10 bits an id: ln 2 * 10.
const knownProbes = 7

// maxKnownWords bounds a filter: 2^24 words, 128 MiB, some 100M ids.
const maxKnownWords = 1 << 24

// NewKnown returns an empty filter sized for n ids.
func NewKnown(n int) *Known {
	w := min(max(1, (10*n+63)/64), maxKnownWords)
	return &Known{words: make([]uint64, w), probes: knownProbes}
}

// probe yields the bit positions of id.
func (f *Known) probe(id uint64, fn func(word int, bit uint64) bool) {
	m := uint64(len(f.words)) * 64
	h1, h2 := id, bits.RotateLeft64(id, 32)|1
	for i := range uint64(f.probes) {
		p := (h1 + i*h2) % m
		if !fn(int(p/64), 1<<(p%64)) {
			return
		}
	}
}

// Add puts id in the set.
func (f *Known) Add(id uint64) {
	f.probe(id, func(w int, b uint64) bool { f.words[w] |= b; return true })
}

// Has reports whether id is in the set (or, rarely, looks so).
func (f *Known) Has(id uint64) bool {
	in := true
	f.probe(id, func(w int, b uint64) bool { in = f.words[w]&b != 0; return in })
	return in
}

func (f *Known) appendBinary(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f.words)))
	dst = append(dst, f.probes)
	for _, w := range f.words {
		dst = binary.LittleEndian.AppendUint64(dst, w)
	}
	return dst
}

func decodeKnown(b []byte) (*Known, error) {
	if len(b) < 5 {
		return nil, fmt.Errorf("%w: known visitors of %d bytes", ErrEncoding, len(b))
	}
	w, k := binary.LittleEndian.Uint32(b), b[4]
	if w == 0 || w > maxKnownWords || k == 0 || k > 16 || uint64(len(b)-5) != 8*uint64(w) {
		return nil, fmt.Errorf("%w: known visitors of %d words, %d probes in %d bytes", ErrEncoding, w, k, len(b))
	}
	f := &Known{words: make([]uint64, w), probes: k}
	for i := range f.words {
		f.words[i] = binary.LittleEndian.Uint64(b[5+8*i:])
	}
	return f, nil
}
