package hbos

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// The binary encoding ships baselines between services. Version 1, all
// integers and floats little-endian:
//
//	magic         4  "HBOS"
//	version       1  1
//	flags         1  bit 0: dynamic bins; bit 1: feature names follow;
//	                 bit 2: left-closed bins
//	bins          4  int32: the configured bins, or -1 for auto
//	alpha         8  float64
//	tol           8  float64
//	contamination 8  float64
//	threshold     8  float64
//	features      4  uint32: d
//	d times:
//	  name        2+len  uint16 length and UTF-8 bytes (only with flag bit 1)
//	  nbins       4  uint32: k >= 1
//	  edges       8*(k+1)  float64, strictly increasing
//	  density     8*k      float64, finite, >= 0
//	crc           4  CRC-32C of every byte before it
//
// Decoding checks every length against the bytes that remain before
// allocating, so corrupt input cannot ask for more memory than its own size.
const (
	encodingMagic   = "HBOS"
	encodingVersion = 1

	flagDynamic = 1 << 0
	flagNames   = 1 << 1
	flagLeft    = 1 << 2

	headerSize = 4 + 1 + 1 + 4 + 4*8 + 4
	crcSize    = 4
	// The smallest encoded feature: one bin, no name.
	minFeatureSize = 4 + 2*8 + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes the model in the versioned format above.
func (m *Model) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(nil)
}

// AppendBinary appends the encoding of the model to b.
func (m *Model) AppendBinary(b []byte) ([]byte, error) {
	start := len(b)
	var flags byte
	if m.cfg.Dynamic {
		flags |= flagDynamic
	}
	if m.names != nil {
		flags |= flagNames
	}
	if m.cfg.LeftClosed {
		flags |= flagLeft
	}
	b = append(b, encodingMagic...)
	b = append(b, encodingVersion, flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(m.cfg.Bins)))
	for _, f := range []float64{m.cfg.Alpha, m.cfg.Tol, m.cfg.Contamination, m.threshold} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.hists)))
	for j, h := range m.hists {
		if m.names != nil {
			if len(m.names[j]) > math.MaxUint16 {
				return nil, fmt.Errorf("encoding hbos model: feature %d name is %d bytes, limit %d", j, len(m.names[j]), math.MaxUint16)
			}
			b = binary.LittleEndian.AppendUint16(b, uint16(len(m.names[j])))
			b = append(b, m.names[j]...)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h.density)))
		for _, f := range h.edges {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
		for _, f := range h.density {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// UnmarshalBinary decodes a model encoded by MarshalBinary. Corrupt,
// truncated or unsupported input is an error wrapping ErrEncoding, and leaves
// m unchanged.
func (m *Model) UnmarshalBinary(data []byte) error {
	decoded, err := decode(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	*m = *decoded
	return nil
}

// decoder reads little-endian values, remembering the first short read.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) next(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.err = fmt.Errorf("truncated at byte %d: need %d more, have %d", d.off, n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) u16() int {
	if p := d.next(2); p != nil {
		return int(binary.LittleEndian.Uint16(p))
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.next(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) f64() float64 {
	if p := d.next(8); p != nil {
		return math.Float64frombits(binary.LittleEndian.Uint64(p))
	}
	return 0
}

func decode(data []byte) (*Model, error) {
	if len(data) < headerSize+crcSize {
		return nil, fmt.Errorf("%d bytes, shorter than the %d-byte header", len(data), headerSize+crcSize)
	}
	body := data[:len(data)-crcSize]
	if string(body[:4]) != encodingMagic {
		return nil, fmt.Errorf("bad magic %q", body[:4])
	}
	if v := body[4]; v != encodingVersion {
		return nil, fmt.Errorf("unsupported version %d (this build reads %d)", v, encodingVersion)
	}
	if want, got := binary.LittleEndian.Uint32(data[len(body):]), crc32.Checksum(body, castagnoli); want != got {
		return nil, fmt.Errorf("checksum mismatch: stored %08x, computed %08x", want, got)
	}
	d := &decoder{b: body, off: 5}
	flags := d.next(1)[0]
	if flags&^(flagDynamic|flagNames|flagLeft) != 0 {
		return nil, fmt.Errorf("unknown flags %#x", flags)
	}
	m := &Model{}
	m.cfg.Dynamic = flags&flagDynamic != 0
	m.cfg.LeftClosed = flags&flagLeft != 0
	m.cfg.Bins = int(int32(d.u32()))
	m.cfg.Alpha, m.cfg.Tol, m.cfg.Contamination = d.f64(), d.f64(), d.f64()
	m.threshold = d.f64()
	if err := m.cfg.Validate(); err != nil {
		return nil, err
	}
	if math.IsNaN(m.threshold) {
		return nil, fmt.Errorf("threshold is NaN")
	}
	nf := d.u32()
	if nf == 0 {
		return nil, fmt.Errorf("no features")
	}
	if uint64(nf)*minFeatureSize > uint64(d.remaining()) {
		return nil, fmt.Errorf("%d features cannot fit in the remaining %d bytes", nf, d.remaining())
	}
	m.hists = make([]histogram, nf)
	if flags&flagNames != 0 {
		m.names = make([]string, nf)
	}
	for j := range m.hists {
		if m.names != nil {
			m.names[j] = string(d.next(d.u16()))
		}
		k := d.u32()
		if d.err != nil {
			return nil, d.err
		}
		if k == 0 {
			return nil, fmt.Errorf("feature %d: no bins", j)
		}
		if (2*uint64(k)+1)*8 > uint64(d.remaining()) {
			return nil, fmt.Errorf("feature %d: %d bins cannot fit in the remaining %d bytes", j, k, d.remaining())
		}
		h := histogram{edges: make([]float64, k+1), density: make([]float64, k)}
		for i := range h.edges {
			h.edges[i] = d.f64()
			if math.IsNaN(h.edges[i]) || math.IsInf(h.edges[i], 0) || (i > 0 && !(h.edges[i] > h.edges[i-1])) {
				return nil, fmt.Errorf("feature %d: edge %d (%v) is not finite and above the one before", j, i, h.edges[i])
			}
		}
		if math.IsInf(h.edges[k]-h.edges[0], 0) {
			return nil, fmt.Errorf("feature %d: edges span more than float64 can hold", j)
		}
		for i := range h.density {
			h.density[i] = d.f64()
			if !(h.density[i] >= 0) || math.IsInf(h.density[i], 0) {
				return nil, fmt.Errorf("feature %d: density %d (%v) is not finite and non-negative", j, i, h.density[i])
			}
		}
		m.hists[j] = h
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.remaining() != 0 {
		return nil, fmt.Errorf("%d unexpected bytes after the last feature", d.remaining())
	}
	m.prepare()
	return m, nil
}
