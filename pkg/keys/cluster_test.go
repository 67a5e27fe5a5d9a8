package keys

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// crc16 is CRC-16/XMODEM (poly 0x1021, init 0), the checksum Redis Cluster
// uses for key slots. Bitwise, as speed does not matter here.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// hashTag returns the bytes Redis Cluster hashes for key: the span between
// the first '{' and the first '}' after it if that span is non-empty, else
// the whole key (as in Redis's keyHashSlot).
func hashTag(key []byte) []byte {
	open := bytes.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	n := bytes.IndexByte(key[open+1:], '}')
	if n <= 0 {
		return key
	}
	return key[open+1 : open+1+n]
}

func keySlot(key []byte) int { return int(crc16(hashTag(key)) & 16383) }

// TestKeySlotReference checks the test's keySlot against the Redis Cluster
// specification, so that the slot tests below prove something.
func TestKeySlotReference(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x31c3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	// Examples from the spec: the tag, or the whole key if there is none.
	for key, want := range map[string]string{
		"{user1000}.following": "user1000",
		"foo{}{bar}":           "foo{}{bar}",
		"foo{{bar}}zap":        "{bar",
		"foo{bar}{zap}":        "bar",
		"{unterminated":        "{unterminated",
		"no tag":               "no tag",
	} {
		if got := string(hashTag([]byte(key))); got != want {
			t.Errorf("hashTag(%q) = %q, want %q", key, got, want)
		}
	}
	// CLUSTER KEYSLOT answers of a real Redis 7.
	for key, want := range map[string]int{
		"somekey":       11058,
		"foo{hash_tag}": 2515,
		"foo":           12182,
	} {
		if got := keySlot([]byte(key)); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

// visitorKeys returns the encodings of several buckets (including bytes 0x7B
// and 0x7D) of one (site, visitor).
func visitorKeys(site, visitor uint64) [][]byte {
	var keys [][]byte
	for _, bucket := range []uint32{0, 1, 29384000, 0x7b7b7b7b, 0x7d7d7d7d, 0x7b7d7b7d, 0x7d7b7d7b, 0x0000007d, 0x7b000000, 0xffffffff} {
		keys = append(keys, Key{Kind: KindBucket, Site: site, Visitor: visitor, Bucket: bucket}.Append(nil))
	}
	return keys
}

// braceIDs returns site or visitor ids that hold '{' and '}' bytes at every
// position, alone and in runs, plus all-brace ids.
func braceIDs(r *rand.Rand) []uint64 {
	ids := []uint64{0, 0x7b7b7b7b7b7b7b7b, 0x7d7d7d7d7d7d7d7d, 0x7b7d7b7d7b7d7b7d, 0x7d7b7d7b7d7b7d7b}
	for shift := 0; shift < 64; shift += 8 {
		for _, c := range []uint64{'{', '}'} {
			clear := r.Uint64() &^ (0xff << shift)
			ids = append(ids, clear|c<<shift)
			// The same brace at this byte and the one after it.
			ids = append(ids, clear&^(0xffff<<shift)|(c<<8|c)<<shift)
		}
	}
	return ids
}

// TestSameSlotPerVisitor proves that all keys of one (site, visitor) land in
// one Redis Cluster slot, whatever bytes the ids contain.
func TestSameSlotPerVisitor(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sites := append(braceIDs(r), SiteID("shop.example.com"))
	visitors := braceIDs(r)
	for range 100 {
		sites = append(sites, r.Uint64())
		visitors = append(visitors, r.Uint64())
	}
	pairs := 0
	for _, site := range sites {
		for _, visitor := range visitors {
			pairs++
			keys := visitorKeys(site, visitor)
			want := keySlot(keys[0])
			for _, key := range keys {
				// The first '{' is byte 2: version and kind are never '{'.
				if i := bytes.IndexByte(key, '{'); i != 2 {
					t.Fatalf("key %x: first '{' at %d, want 2", key, i)
				}
				tag := hashTag(key)
				if len(tag) == 0 || len(tag) == len(key) {
					t.Fatalf("key %x: no hash tag, Redis would hash the whole key", key)
				}
				// The tag is a prefix of tag byte + site + visitor.
				if !bytes.HasPrefix(key[offTag:offClose], tag) {
					t.Fatalf("key %x: tag %x is not a prefix of the site/visitor bytes", key, tag)
				}
				if got := keySlot(key); got != want {
					k, _ := Decode(key)
					t.Fatalf("%v: slot %d, bucket 0 of the same visitor: slot %d", k, got, want)
				}
			}
		}
	}
	t.Logf("%d (site, visitor) pairs, %d keys each: one slot per pair", pairs, len(visitorKeys(0, 0)))
}

// TestSlotSpread checks that visitors spread over slots, also when a '}'
// early in the site id cuts the hash tag short.
func TestSlotSpread(t *testing.T) {
	const numSlots = 16384
	r := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name     string
		site     func() uint64
		visitors int
		min      int // distinct slots
	}{
		// 50k uniform keys over 16384 slots fill about 95% of them.
		{"random sites", r.Uint64, 50000, 15000},
		{"one site", func() uint64 { return SiteID("shop.example.com") }, 50000, 15000},
		// The tag is the tag byte alone: 128 values (a constant would give 1).
		{"site starts with 0x7d", func() uint64 { return 0x7d00000000000000 | r.Uint64()>>8 }, 5000, 120},
		// The tag is the tag byte and one site byte.
		{"site byte 1 is 0x7d", func() uint64 { return 0x5a7d000000000000 | r.Uint64()>>16 }, 5000, 120},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var count [numSlots]int
			distinct, most := 0, 0
			for range tt.visitors {
				k := Key{Kind: KindBucket, Site: tt.site(), Visitor: r.Uint64(), Bucket: 29384000}
				s := keySlot(k.Append(nil))
				if count[s] == 0 {
					distinct++
				}
				count[s]++
				most = max(most, count[s])
			}
			t.Logf("%d visitors: %d distinct slots, busiest slot has %d", tt.visitors, distinct, most)
			if distinct < tt.min {
				t.Errorf("%d visitors in %d distinct slots, want at least %d", tt.visitors, distinct, tt.min)
			}
			// Uniform: about 3 per slot; no slot gets a large share.
			if tt.visitors > numSlots && most > 20 {
				t.Errorf("busiest slot has %d of %d visitors", most, tt.visitors)
			}
		})
	}
}
