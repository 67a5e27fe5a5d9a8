// Package model is the baseline a detector scores a site's traffic class
// with, as the baseline service serves it: the HBOS model of the class,
// the visitors the site's history knows (Known), how its visits begin
// (Starts, and Early for their first few requests), and its versioned
// binary encoding.
//
// The encoding, version 4, integers little-endian:
//
//	magic     4  "ABL4"
//	model     4+n  uint32 length n, then the pkg/hbos encoding
//	known     4+m  uint32 length m, then Known's encoding (m = 0: none)
//	starts    4+s  uint32 length s, then Starts' encoding (s = 0: none)
//	early     4+e  uint32 length e (0: none), then uint32 Early.Requests,
//	               uint32 length k, Early.Model's pkg/hbos encoding (k
//	               bytes), and Early.Starts' encoding
//	shadows   4+h  uint32 length h (0: none), then per shadow: uint16
//	               name length, the name, uint32 length k and its pkg/hbos
//	               encoding (k bytes)
//	crc       4  CRC-32C of every byte before it
//
// Version 3 ("ABL3") has no shadows, version 2 ("ABL2") no early part and
// version 1 ("ABL1") no starts either; all still decode. A detector older than a version refuses it,
// so detectors are upgraded first.
package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

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
	// Early is how those visits began at their first few requests; nil
	// when unknown.
	Early *Early
	// Shadows are the candidate models fitted to the same windows: the
	// detector scores every window with each and records their scores
	// under their names, which are never published.
	Shadows []Shadow
}

// Shadow is a candidate model: a configuration an operator is trying
// next to the live one (see internal/policy). Its model's feature names
// are some of the live model's, in the live order.
type Shadow struct {
	Name  string
	Model *hbos.Model
	// Index is where each of Model's features is in the live model's
	// vector: set by IndexShadows, not encoded.
	Index []int
}

// IndexShadows sets each shadow's Index from live, the feature names of
// the live model's vector, and drops the shadows that need a feature it
// lacks, returning their names.
func (b *Baseline) IndexShadows(live []string) (dropped []string) {
	kept := b.Shadows[:0]
	for _, sh := range b.Shadows {
		names := sh.Model.Names()
		sh.Index = make([]int, 0, len(names))
		for _, n := range names {
			j := slices.Index(live, n)
			if j < 0 {
				break
			}
			sh.Index = append(sh.Index, j)
		}
		if len(sh.Index) < len(names) || len(names) == 0 {
			dropped = append(dropped, sh.Name)
			continue
		}
		kept = append(kept, sh)
	}
	b.Shadows = kept
	return dropped
}

// MaxShadowName bounds a shadow's name, which is a column value and a
// metric label.
const MaxShadowName = 64

// Early is how a class's visits begin at their first Requests requests,
// fewer than a score needs: the shapes of those windows (Starts) and an
// HBOS model fitted to them, which says how unusual a beginning is. A
// detector records such a window of every visit, so that the publisher
// finds crowds of visitors too short-lived to be scored.
type Early struct {
	Requests int
	Model    *hbos.Model
	Starts   *Starts
}

// ErrEncoding is input that is not a baseline's encoding.
var ErrEncoding = errors.New("invalid baseline encoding")

const (
	magic   = "ABL4"
	magicV3 = "ABL3" // no shadows
	magicV2 = "ABL2" // no early part
	magicV1 = "ABL1" // no starts either
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
	var early []byte
	if e := b.Early; e != nil {
		if e.Model == nil || e.Starts == nil || e.Requests <= 0 {
			return nil, errors.New("baseline: an early part needs its requests, model and starts")
		}
		em, err := e.Model.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("the early model: %w", err)
		}
		early = binary.LittleEndian.AppendUint32(early, uint32(e.Requests))
		early = binary.LittleEndian.AppendUint32(early, uint32(len(em)))
		early = append(early, em...)
		early = e.Starts.appendBinary(early)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(early)))
	out = append(out, early...)
	var shadows []byte
	for _, sh := range b.Shadows {
		if sh.Name == "" || len(sh.Name) > MaxShadowName || sh.Model == nil {
			return nil, fmt.Errorf("baseline: a shadow needs a name of 1 to %d bytes and a model, got %q", MaxShadowName, sh.Name)
		}
		sm, err := sh.Model.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("the shadow model %s: %w", sh.Name, err)
		}
		shadows = binary.LittleEndian.AppendUint16(shadows, uint16(len(sh.Name)))
		shadows = append(shadows, sh.Name...)
		shadows = binary.LittleEndian.AppendUint32(shadows, uint32(len(sm)))
		shadows = append(shadows, sm...)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(shadows)))
	out = append(out, shadows...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

// UnmarshalBinary decodes an encoding of MarshalBinary. Corrupt,
// truncated or unsupported input is an error wrapping ErrEncoding, and
// leaves b unchanged.
func (b *Baseline) UnmarshalBinary(data []byte) error {
	if len(data) < len(magic)+12 {
		return fmt.Errorf("%w: not a baseline (%d bytes)", ErrEncoding, len(data))
	}
	version := 0
	switch string(data[:len(magic)]) {
	case magicV1:
		version = 1
	case magicV2:
		version = 2
	case magicV3:
		version = 3
	case magic:
		version = 4
	default:
		return fmt.Errorf("%w: not a baseline (magic %q)", ErrEncoding, data[:len(magic)])
	}
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
	var st, ea, sh []byte
	if version >= 2 {
		if st, err = part("visit starts"); err != nil {
			return err
		}
	}
	if version >= 3 {
		if ea, err = part("early part"); err != nil {
			return err
		}
	}
	if version >= 4 {
		if sh, err = part("shadows"); err != nil {
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
	if len(ea) > 0 {
		if out.Early, err = decodeEarly(ea); err != nil {
			return err
		}
	}
	if out.Shadows, err = decodeShadows(sh); err != nil {
		return err
	}
	*b = out
	return nil
}

func decodeShadows(b []byte) ([]Shadow, error) {
	var out []Shadow
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: shadow name length missing", ErrEncoding)
		}
		n := int(binary.LittleEndian.Uint16(b))
		if n == 0 || n > MaxShadowName || len(b) < 2+n+4 {
			return nil, fmt.Errorf("%w: shadow name of %d bytes in %d", ErrEncoding, n, len(b))
		}
		name := string(b[2 : 2+n])
		b = b[2+n:]
		k := binary.LittleEndian.Uint32(b)
		if uint64(k) > uint64(len(b)-4) {
			return nil, fmt.Errorf("%w: shadow %s: model of %d bytes, %d left", ErrEncoding, name, k, len(b)-4)
		}
		m := new(hbos.Model)
		if err := m.UnmarshalBinary(b[4 : 4+k]); err != nil {
			return nil, fmt.Errorf("%w: shadow %s: %w", ErrEncoding, name, err)
		}
		out = append(out, Shadow{Name: name, Model: m})
		b = b[4+k:]
	}
	return out, nil
}

func decodeEarly(b []byte) (*Early, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: early part of %d bytes", ErrEncoding, len(b))
	}
	requests, n := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	if requests == 0 || requests > 1<<16 || uint64(n) > uint64(len(b)-8) {
		return nil, fmt.Errorf("%w: early part of %d requests, model of %d bytes in %d", ErrEncoding, requests, n, len(b))
	}
	e := &Early{Requests: int(requests), Model: new(hbos.Model)}
	if err := e.Model.UnmarshalBinary(b[8 : 8+n]); err != nil {
		return nil, fmt.Errorf("%w: early model: %w", ErrEncoding, err)
	}
	var err error
	if e.Starts, err = decodeStarts(b[8+n:]); err != nil {
		return nil, err
	}
	return e, nil
}
