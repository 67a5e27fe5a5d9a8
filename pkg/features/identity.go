package features

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/dchest/siphash"
)

// IdentityMode says which request fields identify a visitor. Its value is
// the first byte hashed into every visitor id: never renumber.
type IdentityMode uint8

// The identity modes; the zero value is IdentityIP.
const (
	IdentityIP   IdentityMode = 0 // the client IP
	IdentityIPUA IdentityMode = 1 // the client IP and the user agent
	IdentityJA3  IdentityMode = 2 // the JA3 TLS fingerprint
	IdentityJA4  IdentityMode = 3 // the JA4 TLS fingerprint
)

// String returns the mode's flag name: ip, ip+ua, ja3 or ja4.
func (m IdentityMode) String() string {
	switch m {
	case IdentityIP:
		return "ip"
	case IdentityIPUA:
		return "ip+ua"
	case IdentityJA3:
		return "ja3"
	case IdentityJA4:
		return "ja4"
	}
	return fmt.Sprintf("identity(%d)", uint8(m))
}

// Fingerprint reports whether m identifies visitors by a TLS fingerprint,
// under which one visitor may use many IPs (a scored feature then).
func (m IdentityMode) Fingerprint() bool { return m == IdentityJA3 || m == IdentityJA4 }

// ParseIdentityMode parses a mode's flag name.
func ParseIdentityMode(s string) (IdentityMode, error) {
	for m := IdentityIP; m <= IdentityJA4; m++ {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w %q (want ip, ip+ua, ja3 or ja4)", ErrIdentityMode, s)
}

// Set parses a flag value with ParseIdentityMode, so that *IdentityMode is
// a flag.Value.
func (m *IdentityMode) Set(s string) error {
	p, err := ParseIdentityMode(s)
	if err != nil {
		return err
	}
	*m = p
	return nil
}

// MinIdentityKey is the shortest secret NewIdentity accepts: 16 bytes, the
// 128 bits of a SipHash key.
const MinIdentityKey = 16

// identityKeyPrefix separates the SipHash key from other hashes of the same
// secret (a SHA-256 of the secret shown to check a deployment must not
// reveal the key).
const identityKeyPrefix = "anomalyd visitor id v1\x00"

// Identity computes visitor ids: keyed 64-bit hashes of a request's
// identifying fields, so that Redis, Kafka and the edge never hold a raw IP
// or fingerprint, and ids cannot be computed or reversed without the
// secret. It is safe for concurrent use.
//
// The id is stored in Redis keys and sent to the edge, which must compute
// the same id to act on a detection, so its definition is fixed: SipHash-2-4
// with the 16-byte key K = SHA-256("anomalyd visitor id v1\x00" || secret)
// truncated to 16 bytes, of the message
//
//	mode byte   0 ip, 1 ip+ua, 2 ja3, 3 ja4
//	ip, ip+ua   the client IP as 16 bytes, IPv4 as ::ffff:a.b.c.d (so
//	            "1.2.3.4" and "::ffff:1.2.3.4" are one visitor), zone ignored
//	ip+ua       then the user-agent bytes, as given
//	ja3, ja4    the fingerprint bytes, as given
//
// The IP has a fixed width and the user agent comes last, so the message is
// unambiguous without separators; the mode byte keeps modes apart. The id
// is the SipHash output as a uint64 (its 8 bytes read little-endian).
type Identity struct {
	mode   IdentityMode
	k0, k1 uint64 // K, as the two little-endian halves dchest/siphash takes
}

// NewIdentity returns the Identity of mode, keyed by secret, which must have
// at least MinIdentityKey bytes. All of the secret counts, whatever its
// length.
func NewIdentity(mode IdentityMode, secret []byte) (*Identity, error) {
	if mode > IdentityJA4 {
		return nil, fmt.Errorf("%w %s", ErrIdentityMode, mode)
	}
	if len(secret) < MinIdentityKey {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrIdentityKey, len(secret), MinIdentityKey)
	}
	k := sha256.Sum256(append([]byte(identityKeyPrefix), secret...))
	return &Identity{
		mode: mode,
		k0:   binary.LittleEndian.Uint64(k[0:8]),
		k1:   binary.LittleEndian.Uint64(k[8:16]),
	}, nil
}

// Mode returns the identity's mode.
func (id *Identity) Mode() IdentityMode { return id.mode }

// Visitor returns the visitor id of ev. It returns ErrNoClientIP for an
// IP-based mode when ev has no valid client IP, and ErrNoFingerprint for a
// fingerprint mode when ev lacks the fingerprint. These come unwrapped
// because plain-HTTP traffic under a fingerprint mode meets them on every
// request. Visitor does not allocate unless the message outgrows its
// 512-byte stack buffer: under ip+ua, a user agent longer than 495 bytes.
func (id *Identity) Visitor(ev *Event) (uint64, error) {
	var buf [512]byte // on the stack: siphash.Hash does not keep its input
	msg := append(buf[:0], byte(id.mode))
	switch id.mode {
	case IdentityIP, IdentityIPUA:
		if !ev.ClientIP.IsValid() {
			return 0, ErrNoClientIP
		}
		ip := ev.ClientIP.As16()
		msg = append(msg, ip[:]...)
		if id.mode == IdentityIPUA {
			msg = append(msg, ev.UserAgent...)
		}
	case IdentityJA3, IdentityJA4:
		fp := ev.JA3
		if id.mode == IdentityJA4 {
			fp = ev.JA4
		}
		if len(fp) == 0 {
			return 0, ErrNoFingerprint
		}
		msg = append(msg, fp...)
	}
	return siphash.Hash(id.k0, id.k1, msg), nil
}
