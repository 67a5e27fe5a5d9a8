package keys

import (
	"bytes"
	"errors"
	"testing"
)

var sentinels = []error{ErrLength, ErrVersion, ErrKind, ErrHashTag}

// FuzzDecode: Decode never panics, accepts only canonical encodings, and
// explains every rejection with a sentinel error.
func FuzzDecode(f *testing.F) {
	for _, k := range validKeys {
		f.Add(k.Append(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add([]byte("ad:{shop.example.com:203.0.113.77}:distinct_paths:29384000"))
	f.Add(bytes.Repeat([]byte{'}'}, Size))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Decode(b)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("Decode(%x): error %v wraps no sentinel", b, err)
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("Decode(%x) = %v, which does not validate: %v", b, k, err)
		}
		if enc := k.Append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("Decode(%x) = %v, which encodes to %x", b, k, enc)
		}
	})
}

// FuzzRoundTrip: a valid Key survives Append and Decode and shares the slot
// of its visitor's other buckets; an invalid one never decodes.
func FuzzRoundTrip(f *testing.F) {
	for _, k := range validKeys {
		f.Add(uint8(k.Kind), k.Site, k.Visitor, k.Bucket)
	}
	f.Add(uint8('{'), uint64(0), uint64(0), uint32(0))
	f.Add(uint8(0x02), uint64(1), uint64(2), uint32(4))
	f.Add(uint8(KindBucket), uint64(0x7d7b), uint64(0x7b7d), uint32(0x7d7b))
	f.Fuzz(func(t *testing.T, kind uint8, site, visitor uint64, bucket uint32) {
		k := Key{Kind: Kind(kind), Site: site, Visitor: visitor, Bucket: bucket}
		enc := k.Append(nil)
		if len(enc) != Size {
			t.Fatalf("%v: %d bytes, want %d", k, len(enc), Size)
		}
		got, err := Decode(enc)
		if verr := k.Validate(); verr != nil {
			if err == nil {
				t.Fatalf("invalid %v (%v) decodes as %v", k, verr, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decode(Append(%v)): %v", k, err)
		}
		if got != k {
			t.Fatalf("Decode(Append(%v)) = %v", k, got)
		}
		other := Key{Kind: KindBucket, Site: site, Visitor: visitor, Bucket: ^bucket}.Append(nil)
		if a, b := keySlot(enc), keySlot(other); a != b {
			t.Fatalf("%v: slot %d, bucket %d of the same visitor: slot %d", k, a, ^bucket, b)
		}
	})
}
