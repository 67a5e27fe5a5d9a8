package features

import (
	"encoding/binary"
	"math"

	"github.com/cespare/xxhash/v2"
)

// ShapeQuantum is the rounding of feature values in a Shape. A visit is
// first scored when its window reaches -min-requests requests, so its
// values are few (shares of four or five requests, log-odds of none to
// all of them); a quarter keeps them apart while the windows of one
// program's many addresses, alike but not identical, still fall
// together.
const ShapeQuantum = 0.25

// Shape is a window's feature vector rounded to ShapeQuantum, hashed:
// windows of the same shape look alike to within the rounding. The
// baseline counts the shapes its history's visits began in, and the
// publisher looks for crowds of new visitors whose visits begin in one.
func Shape(vec []float64) uint64 {
	var b [8 * 16]byte
	buf := b[:0]
	for _, v := range vec {
		q := math.Round(v / ShapeQuantum)
		q = max(min(q, 1<<40), -1<<40) // finite values only; bounded for the conversion
		buf = binary.LittleEndian.AppendUint64(buf, uint64(int64(q)))
	}
	return xxhash.Sum64(buf)
}
