// Package model is the baseline a detector scores a site's traffic class
// with, as the baseline service serves it: the HBOS model of the class,
// the visitors the site's history knows (Known), how its visits begin
// (Starts), and its versioned binary encoding.
//
// The encoding, version 2, integers little-endian:
//
//	magic     4  "ABL2"
//	model     4+n  uint32 length n, then the pkg/hbos encoding
//	known     4+m  uint32 length m, then Known's encoding (m = 0: none)
//	starts    4+s  uint32 length s, then Starts' encoding (s = 0: none)
//	crc       4  CRC-32C of every byte before it
//
// Version 1 ("ABL1") has no starts; it still decodes. A detector older
// than version 2 refuses it, so detectors are upgraded first.
package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/anomalyd/anomalyd/pkg/hbos"
)

// Baseline is what judges a site's traffic class.
type Baseline struct {
	Model *hbos.Model
	// Known are the visitors of the site's history, but those its fit
	// left out as bots; nil when unknown.
	Known *Known
	// Starts is how the history's visits of the class began, but those
	// of visitors its fit left out; nil when unknown.
	Starts *Starts
}

// ErrEncoding is input that is not a baseline's encoding.
var ErrEncoding = errors.New("invalid baseline encoding")

const (
	magic   = "ABL2"
	magicV1 = "ABL1" // no starts
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes b.
func (b *Baseline) MarshalBinary() ([]byte, error) {
	m, err := b.Model.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := append([]byte(magic), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[len(magic):], uint32(len(m)))
	out = append(out, m...)
	var known []byte
	if b.Known != nil {
		known = b.Known.appendBinary(nil)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(known)))
	out = append(out, known...)
	var starts []byte
	if b.Starts != nil {
		starts = b.Starts.appendBinary(nil)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(starts)))
	out = append(out, starts...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

// UnmarshalBinary decodes an encoding of MarshalBinary. Corrupt,
// truncated or unsupported input is an error wrapping ErrEncoding, and
// leaves b unchanged.
func (b *Baseline) UnmarshalBinary(data []byte) error {
	if len(data) < len(magic)+12 || string(data[:len(magic)]) != magic && string(data[:len(magic)]) != magicV1 {
		return fmt.Errorf("%w: not a baseline (magic %q)", ErrEncoding, data[:min(len(data), len(magic))])
	}
	v1 := string(data[:len(magic)]) == magicV1
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrEncoding)
	}
	rest := body[len(magic):]
	part := func(what string) ([]byte, error) {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: %s length missing", ErrEncoding, what)
		}
		n := binary.LittleEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: %s of %d bytes, %d left", ErrEncoding, what, n, len(rest)-4)
		}
		p := rest[4 : 4+n]
		rest = rest[4+n:]
		return p, nil
	}
	m, err := part("model")
	if err != nil {
		return err
	}
	k, err := part("known visitors")
	if err != nil {
		return err
	}
	var st []byte
	if !v1 {
		if st, err = part("visit starts"); err != nil {
			return err
		}
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrEncoding, len(rest))
	}
	var out Baseline
	out.Model = new(hbos.Model)
	if err := out.Model.UnmarshalBinary(m); err != nil {
		return fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	if len(k) > 0 {
		if out.Known, err = decodeKnown(k); err != nil {
			return err
		}
	}
	if len(st) > 0 {
		if out.Starts, err = decodeStarts(st); err != nil {
			return err
		}
	}
	*b = out
	return nil
}
