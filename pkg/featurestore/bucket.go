package featurestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/axiomhq/hyperloglog"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// sketchPrecision is the HyperLogLog precision of every sketch: 2^12
// registers, 1.6% standard error once dense. A visitor's bucket rarely holds
// more than a few hundred distinct values, which the sparse representation
// stores exactly and compactly, so the precision only matters for heavy
// crawlers, where 4 KiB dense sketches keep merging and estimating cheap.
const sketchPrecision = 12

// bucket is one visitor's state in one window bucket.
type bucket struct {
	counts   [features.NumCounters]uint64
	sketches [features.NumSketches]*hyperloglog.Sketch // nil while empty
	last     uint32                                    // Observation.Second of the latest request added
	dirty    bool                                      // changed since a RedisStore last wrote it
}

// add folds one observation in. Sketch inserts are idempotent: replaying an
// event leaves distinct counts unchanged.
func (b *bucket) add(o *features.Observation) {
	repeated := b.counts[features.CountRequests] > 0 && o.Second == b.last
	b.last = o.Second
	for i := range features.NumCounters {
		d := features.Counter(i).Def()
		switch d.Kind {
		case features.EveryRequest:
			b.counts[i]++
		case features.FlaggedRequests:
			if o.Flags&d.Flag != 0 {
				b.counts[i]++
			}
		case features.RepeatedSeconds:
			if repeated {
				b.counts[i]++
			}
		}
	}
	for i, h := range o.Hashes {
		if h == 0 {
			continue
		}
		if b.sketches[i] == nil {
			b.sketches[i] = newSketch()
		}
		b.sketches[i].InsertHash(h)
	}
}

func newSketch() *hyperloglog.Sketch {
	sk, err := hyperloglog.NewSketch(sketchPrecision, true)
	if err != nil {
		panic(err) // sketchPrecision is a valid constant
	}
	return sk
}

// sparseScratch holds sketches for aggregate to merge into, kept while
// they stay sparse: a window of a few requests then allocates no sketch.
type sparseScratch [features.NumSketches]*hyperloglog.Sketch

// take returns an empty sketch for sketch i, the scratch's if it has one.
func (sc *sparseScratch) take(i int) *hyperloglog.Sketch {
	if sc == nil || sc[i] == nil {
		return newSketch()
	}
	sk := sc[i]
	sc[i] = nil
	sk.Reset()
	return sk
}

// keep gives sk, estimated at n distinct values, back to the scratch if it
// is small enough to be sparse: a dense one would cost every later window
// its whole register array. (A sketch turns dense past m bytes of sparse
// list, some thousand values at sketchPrecision; Reset keeps either form.)
func (sc *sparseScratch) keep(i int, sk *hyperloglog.Sketch, n uint64) {
	if sc != nil && n < 256 {
		sc[i] = sk
	}
}

// aggregate merges buckets into a window Aggregate; nil buckets are empty.
// A sketch found in one bucket only, as in most windows, is estimated
// where it is rather than copied into a merged one; the others are merged
// into sketches taken from scratch, which may be nil.
func aggregate(buckets []*bucket, scratch *sparseScratch) (features.Aggregate, error) {
	var a features.Aggregate
	var first, merged [features.NumSketches]*hyperloglog.Sketch
	for _, b := range buckets {
		if b == nil {
			continue
		}
		for i, c := range b.counts {
			a.Counts[i] += c
		}
		for i, sk := range b.sketches {
			switch {
			case sk == nil:
			case first[i] == nil:
				first[i] = sk
			default:
				if merged[i] == nil {
					merged[i] = scratch.take(i)
					if err := merged[i].Merge(first[i]); err != nil {
						return features.Aggregate{}, fmt.Errorf("merging %s sketches: %w", features.Sketch(i), err)
					}
				}
				if err := merged[i].Merge(sk); err != nil {
					return features.Aggregate{}, fmt.Errorf("merging %s sketches: %w", features.Sketch(i), err)
				}
			}
		}
	}
	for i := range merged {
		switch {
		case merged[i] != nil:
			a.Distinct[i] = merged[i].Estimate()
			scratch.keep(i, merged[i], a.Distinct[i])
		case first[i] != nil:
			a.Distinct[i] = first[i].Estimate()
		}
	}
	return a, nil
}

// The bucket encoding stored in Redis, version 4 (version 3 had one
// counter less, CountAPI, and decodes with it 0; versions 1 and 2 had other
// counters and sketches, and their buckets expired with their window):
//
//	version   1 byte  (4)
//	counts    NumCounters uvarints (6 in version 3)
//	last      uvarint, the Unix second of the latest request
//	present   1 byte  bitmap of the sketches that follow, bit i = Sketch i
//	sketches  for each present sketch: uvarint length, then the axiomhq
//	          hyperloglog encoding
const bucketVersion = 4

// countersV3 is how many counters a version 3 bucket has.
const countersV3 = 6

var errBucketEncoding = errors.New("invalid bucket encoding")

// appendBinary appends b's encoding to dst.
func (b *bucket) appendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, bucketVersion)
	for _, c := range b.counts {
		dst = binary.AppendUvarint(dst, c)
	}
	dst = binary.AppendUvarint(dst, uint64(b.last))
	var present byte
	for i, sk := range b.sketches {
		if sk != nil {
			present |= 1 << i
		}
	}
	dst = append(dst, present)
	for i, sk := range b.sketches {
		if sk == nil {
			continue
		}
		// The sketch is appended in place, then moved up past its length:
		// a few hundred bytes moved, rather than a buffer allocated each.
		start := len(dst)
		var err error
		if dst, err = sk.AppendBinary(dst); err != nil {
			return nil, fmt.Errorf("encoding %s sketch: %w", features.Sketch(i), err)
		}
		n := len(dst) - start
		var length [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(length[:], uint64(n))
		dst = append(dst, length[:k]...)
		copy(dst[start+k:], dst[start:start+n])
		copy(dst[start:], length[:k])
	}
	return dst, nil
}

// decodeBucket parses an encoding made by appendBinary.
func decodeBucket(data []byte) (*bucket, error) {
	if len(data) == 0 || (data[0] != bucketVersion && data[0] != 3) {
		return nil, fmt.Errorf("%w: unknown version", errBucketEncoding)
	}
	counters := features.NumCounters
	if data[0] == 3 {
		counters = countersV3
	}
	data = data[1:]
	b := &bucket{}
	for i := range b.counts[:counters] {
		c, n := binary.Uvarint(data)
		if n <= 0 {
			return nil, fmt.Errorf("%w: counter %d", errBucketEncoding, i)
		}
		b.counts[i], data = c, data[n:]
	}
	last, n := binary.Uvarint(data)
	if n <= 0 || last > 1<<32-1 {
		return nil, fmt.Errorf("%w: last second", errBucketEncoding)
	}
	b.last, data = uint32(last), data[n:]
	if len(data) == 0 || data[0]>>features.NumSketches != 0 {
		return nil, fmt.Errorf("%w: sketch bitmap", errBucketEncoding)
	}
	present := data[0]
	data = data[1:]
	for i := range b.sketches {
		if present&(1<<i) == 0 {
			continue
		}
		size, n := binary.Uvarint(data)
		if n <= 0 || size > uint64(len(data)-n) {
			return nil, fmt.Errorf("%w: %s sketch length", errBucketEncoding, features.Sketch(i))
		}
		sk := &hyperloglog.Sketch{}
		if err := sk.UnmarshalBinary(data[n : n+int(size)]); err != nil {
			return nil, fmt.Errorf("%w: %s sketch: %w", errBucketEncoding, features.Sketch(i), err)
		}
		b.sketches[i], data = sk, data[n+int(size):]
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBucketEncoding, len(data))
	}
	return b, nil
}
