package model

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// Starts is how a site's visits of a class begin: of the visits of its
// history, how many began in each shape (features.Shape of the window the
// detector first scores, a visit's first -min-requests requests). The
// publisher compares the new visitors whose visits begin alike with it
// (a crowd). It is safe for concurrent reads once built.
//
// Its encoding: uint64 visits, uint32 number of shapes n, then n pairs of
// uint64 shape and uint32 visits, in shape order.
type Starts struct {
	visits uint64
	shapes map[uint64]uint32
}

// MaxStartShapes bounds the shapes Starts keeps: the commonest. A shape
// left out is as rare as one never seen.
const MaxStartShapes = 1 << 16

// NewStarts returns Starts of no visits.
func NewStarts() *Starts { return &Starts{shapes: make(map[uint64]uint32)} }

// Add counts a visit that began in shape.
func (s *Starts) Add(shape uint64) {
	s.visits++
	s.shapes[shape]++
}

// Visits is the number of visits counted.
func (s *Starts) Visits() uint64 { return s.visits }

// Share is the share of the visits that began in shape, with half a visit
// for every shape: a shape never seen is rare, not impossible.
func (s *Starts) Share(shape uint64) float64 {
	return (float64(s.shapes[shape]) + 0.5) / (float64(s.visits) + 1)
}

func (s *Starts) appendBinary(dst []byte) []byte {
	keys := slices.Collect(maps.Keys(s.shapes))
	if len(keys) > MaxStartShapes {
		// The commonest, ties by shape: the same history, the same bytes.
		slices.SortFunc(keys, func(a, b uint64) int {
			return cmp.Or(cmp.Compare(s.shapes[b], s.shapes[a]), cmp.Compare(a, b))
		})
		keys = keys[:MaxStartShapes]
	}
	slices.Sort(keys)
	dst = binary.LittleEndian.AppendUint64(dst, s.visits)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(keys)))
	for _, k := range keys {
		dst = binary.LittleEndian.AppendUint64(dst, k)
		dst = binary.LittleEndian.AppendUint32(dst, s.shapes[k])
	}
	return dst
}

func decodeStarts(b []byte) (*Starts, error) {
	if len(b) < 12 {
		return nil, fmt.Errorf("%w: visit starts of %d bytes", ErrEncoding, len(b))
	}
	visits, n := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:])
	if n > MaxStartShapes || uint64(len(b)-12) != 12*uint64(n) {
		return nil, fmt.Errorf("%w: visit starts of %d shapes in %d bytes", ErrEncoding, n, len(b))
	}
	s := &Starts{visits: visits, shapes: make(map[uint64]uint32, n)}
	var sum uint64
	for i := range int(n) {
		p := b[12+12*i:]
		shape, c := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint32(p[8:])
		if _, dup := s.shapes[shape]; dup || c == 0 {
			return nil, fmt.Errorf("%w: visit starts: shape %016x repeated or of no visit", ErrEncoding, shape)
		}
		s.shapes[shape] = c
		sum += uint64(c)
	}
	if sum > visits {
		return nil, fmt.Errorf("%w: visit starts: %d visits in shapes of %d", ErrEncoding, sum, visits)
	}
	return s, nil
}
