package keys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Version is the layout version, the first byte of every key. It also acts
// as anomalyd's namespace in a shared Redis: no text key starts with 0x01.
const Version byte = 0x01

// Size is the length in bytes of every key of this [Version].
const Size = 25

// Byte offsets of the layout documented in the package doc.
const (
	offVersion = 0
	offKind    = 1
	offOpen    = 2
	offTag     = 3
	offSite    = 4
	offVisitor = 12
	offClose   = 20
	offBucket  = 21
)

// Sentinel errors returned, wrapped with detail, by [Decode] and
// [Key.Validate]. Test for them with errors.Is.
var (
	ErrLength  = errors.New("keys: wrong key length")
	ErrVersion = errors.New("keys: unknown layout version")
	ErrKind    = errors.New("keys: unknown kind")
	ErrHashTag = errors.New("keys: malformed hash tag")
)

// Kind says what a key holds. Zero is not a kind, so a zero Key is invalid.
type Kind uint8

// Kinds of per-visitor state. Values are part of the layout: never reuse one,
// and never use 0x7B ('{'), which would move the hash tag.
const (
	// KindBucket is all of one visitor's state (counters and sketches) in
	// one window bucket, stored as a single encoded value.
	KindBucket Kind = 0x01
)

// String returns the kind's short name, or kind(0xNN) for an unknown kind.
func (k Kind) String() string {
	switch k {
	case KindBucket:
		return "bucket"
	}
	return fmt.Sprintf("kind(0x%02x)", uint8(k))
}

// Key identifies one piece of per-visitor state in Redis.
type Key struct {
	Kind    Kind
	Site    uint64 // site id, see SiteID
	Visitor uint64 // keyed hash of the visitor identity, computed by the caller
	Bucket  uint32 // window start unix seconds / bucket width
}

// Validate reports whether k can be encoded as a key that Decode accepts.
// Every site, visitor and bucket value is valid; only the kind can be wrong.
func (k Key) Validate() error {
	switch k.Kind {
	case KindBucket:
		return nil
	}
	return fmt.Errorf("%w: 0x%02x", ErrKind, uint8(k.Kind))
}

// Append appends the Size-byte encoding of k to dst and returns the extended
// slice. It does not allocate when dst has Size bytes of spare capacity.
// Append does not validate k (it is on the hot path): an invalid key encodes
// to bytes that Decode rejects. Use Validate for keys built from input.
func (k Key) Append(dst []byte) []byte {
	dst = append(dst, Version, byte(k.Kind), '{', tagByte(k.Site, k.Visitor))
	dst = binary.BigEndian.AppendUint64(dst, k.Site)
	dst = binary.BigEndian.AppendUint64(dst, k.Visitor)
	dst = append(dst, '}')
	return binary.BigEndian.AppendUint32(dst, k.Bucket)
}

// Decode parses a key produced by Append. It rejects anything else (wrong
// length, unknown version or kind, bad hash tag) with an error wrapping one
// of the sentinel errors.
func Decode(b []byte) (Key, error) {
	// Version first: a key of another layout version may have another length.
	if len(b) == 0 {
		return Key{}, fmt.Errorf("%w: empty key", ErrLength)
	}
	if b[offVersion] != Version {
		return Key{}, fmt.Errorf("%w: 0x%02x, want 0x%02x", ErrVersion, b[offVersion], Version)
	}
	if len(b) != Size {
		return Key{}, fmt.Errorf("%w: %d bytes, want %d", ErrLength, len(b), Size)
	}
	if b[offOpen] != '{' {
		return Key{}, fmt.Errorf("%w: byte %d is 0x%02x, want '{'", ErrHashTag, offOpen, b[offOpen])
	}
	if b[offClose] != '}' {
		return Key{}, fmt.Errorf("%w: byte %d is 0x%02x, want '}'", ErrHashTag, offClose, b[offClose])
	}
	k := Key{
		Kind:    Kind(b[offKind]),
		Site:    binary.BigEndian.Uint64(b[offSite:]),
		Visitor: binary.BigEndian.Uint64(b[offVisitor:]),
		Bucket:  binary.BigEndian.Uint32(b[offBucket:]),
	}
	if want := tagByte(k.Site, k.Visitor); b[offTag] != want {
		return Key{}, fmt.Errorf("%w: tag byte 0x%02x does not match site and visitor (want 0x%02x)", ErrHashTag, b[offTag], want)
	}
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	return k, nil
}

// String formats k for debugging, e.g. "bucket site=0x9750ba2ac58d8966
// visitor=0x00000000c0ffee00 bucket=29384000" (one line).
func (k Key) String() string {
	return fmt.Sprintf("%s site=0x%016x visitor=0x%016x bucket=%d", k.Kind, k.Site, k.Visitor, k.Bucket)
}

// tagByte is the first byte of the hash tag. The high bit keeps it from ever
// being '}' (an empty tag would hash the whole key); the low 7 bits mix site
// and visitor so that keys whose tag ends early (a 0x7D in the site) still
// spread over slots. Part of the stored layout: do not change.
func tagByte(site, visitor uint64) byte {
	h := (site ^ bits.RotateLeft64(visitor, 32)) * 0x9e3779b97f4a7c15
	return 0x80 | byte(h>>57)
}
