package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"testing"
)

// validKeys covers the kind with edge values; the tests and fuzz seeds use it.
var validKeys = []Key{
	{Kind: KindBucket, Site: 0x9750ba2ac58d8966, Visitor: 0x00000000c0ffee00, Bucket: 29384000},
	{Kind: KindBucket},
	{Kind: KindBucket, Site: math.MaxUint64, Visitor: math.MaxUint64, Bucket: math.MaxUint32},
	{Kind: KindBucket, Site: 1, Visitor: 2, Bucket: 1},
	{Kind: KindBucket, Site: 0x7b7d7b7d7b7d7b7d, Visitor: 0x7d7b7d7b7d7b7d7b, Bucket: 0x7b7d7b7d},
}

// TestGolden pins the byte layout, the tag byte and SiteID: if this test
// fails, every key already stored in Redis has been orphaned.
func TestGolden(t *testing.T) {
	tests := []struct {
		key  Key
		want string // hex
	}{
		{
			key:  Key{Kind: KindBucket, Site: SiteID("shop.example.com"), Visitor: 0x00000000c0ffee00, Bucket: 29384000},
			want: "01" + "01" + "7b" + "e6" + "9750ba2ac58d8966" + "00000000c0ffee00" + "7d" + "01c05d40",
		},
		{
			key:  Key{Kind: KindBucket, Site: 0x0102030405060708, Visitor: 0x1112131415161718, Bucket: 1},
			want: "01" + "01" + "7b" + "db" + "0102030405060708" + "1112131415161718" + "7d" + "00000001",
		},
		{
			key:  Key{Kind: KindBucket, Site: 1, Visitor: 2},
			want: "01" + "01" + "7b" + "ce" + "0000000000000001" + "0000000000000002" + "7d" + "00000000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.key.String(), func(t *testing.T) {
			got := hex.EncodeToString(tt.key.Append(nil))
			if got != tt.want {
				t.Errorf("Append =\n %s\nwant\n %s", got, tt.want)
			}
		})
	}
}

func TestSiteID(t *testing.T) {
	if got, want := SiteID("shop.example.com"), uint64(0x9750ba2ac58d8966); got != want {
		t.Errorf("SiteID(shop.example.com) = %#x, want %#x (stored keys depend on it)", got, want)
	}
	// Same as the standard FNV-1a 64, so other tools can compute it.
	for _, name := range []string{"", "a", "shop.example.com", "EXAMPLE.org", "xn--bcher-kva.example", strings.Repeat("z", 300)} {
		h := fnv.New64a()
		h.Write([]byte(name))
		if got, want := SiteID(name), h.Sum64(); got != want {
			t.Errorf("SiteID(%q) = %#x, hash/fnv = %#x", name, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = SiteID("shop.example.com") }); n != 0 {
		t.Errorf("SiteID allocates %v times, want 0", n)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, k := range validKeys {
		t.Run(k.String(), func(t *testing.T) {
			if err := k.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			b := k.Append(nil)
			if len(b) != Size {
				t.Fatalf("len = %d, want %d", len(b), Size)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != k {
				t.Fatalf("Decode = %+v, want %+v", got, k)
			}
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	k := validKeys[0]
	b := k.Append([]byte("prefix"))
	if !bytes.HasPrefix(b, []byte("prefix")) || !bytes.Equal(b[6:], k.Append(nil)) {
		t.Fatalf("Append did not append: %x", b)
	}
}

func TestZeroAllocs(t *testing.T) {
	k := validKeys[0]
	buf := make([]byte, 0, Size)
	if n := testing.AllocsPerRun(1000, func() { buf = k.Append(buf[:0]) }); n != 0 {
		t.Errorf("Append allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := Decode(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decode allocates %v times, want 0", n)
	}
}

// The bucket is big-endian and last, so a visitor's keys sort by bucket.
func TestSortOrder(t *testing.T) {
	buckets := []uint32{0, 1, 0x7b, 0x7d, 255, 256, 0xffff, 0x10000, 29384000, 0x7b7d7b7d, 0x7d7b7d7b, math.MaxUint32 - 1, math.MaxUint32}
	if !slices.IsSorted(buckets) {
		t.Fatal("test buckets are not sorted")
	}
	for i := 1; i < len(buckets); i++ {
		lo := Key{Kind: KindBucket, Site: 5, Visitor: 6, Bucket: buckets[i-1]}
		hi := Key{Kind: KindBucket, Site: 5, Visitor: 6, Bucket: buckets[i]}
		if bytes.Compare(lo.Append(nil), hi.Append(nil)) >= 0 {
			t.Errorf("bucket %d does not sort before bucket %d", lo.Bucket, hi.Bucket)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := Key{Kind: KindBucket, Site: 0x9750ba2ac58d8966, Visitor: 0xc0ffee00, Bucket: 29384000}
	// mutate returns the encoding of k with fn applied to it.
	mutate := func(k Key, fn func(b []byte)) []byte {
		b := k.Append(nil)
		fn(b)
		return b
	}
	// The dropped 26-byte layout (a feature byte before the bucket), which
	// also had version 0x01.
	feature := slices.Insert(valid.Append(nil), offBucket, 3)
	tests := []struct {
		name    string
		in      []byte
		want    error
		wantMsg string
	}{
		{"nil", nil, ErrLength, "empty key"},
		{"empty", []byte{}, ErrLength, "empty key"},
		{"version only", []byte{Version}, ErrLength, "1 bytes, want 25"},
		{"short", valid.Append(nil)[:Size-1], ErrLength, "24 bytes, want 25"},
		{"long", append(valid.Append(nil), 0), ErrLength, "26 bytes, want 25"},
		{"feature byte layout", feature, ErrLength, "26 bytes, want 25"},
		{"bad version", mutate(valid, func(b []byte) { b[0] = 0x02 }), ErrVersion, "0x02, want 0x01"},
		{"version zero", mutate(valid, func(b []byte) { b[0] = 0 }), ErrVersion, "0x00"},
		{"text key", []byte("ad:{shop.example.com:203.0.113.77}:distinct_paths:29384000"), ErrVersion, "0x61"},
		{"kind zero", mutate(valid, func(b []byte) { b[1] = 0 }), ErrKind, "0x00"},
		{"kind unknown", mutate(valid, func(b []byte) { b[1] = 2 }), ErrKind, "0x02"},
		{"kind brace", mutate(valid, func(b []byte) { b[1] = '{' }), ErrKind, "0x7b"},
		{"missing open brace", mutate(valid, func(b []byte) { b[2] = 'x' }), ErrHashTag, "byte 2 is 0x78, want '{'"},
		{"missing close brace", mutate(valid, func(b []byte) { b[20] = 0 }), ErrHashTag, "byte 20 is 0x00, want '}'"},
		{"tag byte mismatch", mutate(valid, func(b []byte) { b[3] ^= 1 }), ErrHashTag, "does not match"},
		{"tag byte close brace", mutate(valid, func(b []byte) { b[3] = '}' }), ErrHashTag, "tag byte 0x7d"},
		{"site changed under tag", mutate(valid, func(b []byte) { b[4] ^= 0x40 }), ErrHashTag, "does not match"},
		{"visitor changed under tag", mutate(valid, func(b []byte) { b[19] ^= 0x01 }), ErrHashTag, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Decode(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%x) = %v, %v; want error %v", tt.in, k, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if k != (Key{}) {
				t.Errorf("Decode returned %+v with an error, want zero Key", k)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		key  Key
		want error
	}{
		{Key{Kind: KindBucket}, nil},
		{Key{Kind: KindBucket, Site: math.MaxUint64, Visitor: math.MaxUint64, Bucket: math.MaxUint32}, nil},
		{Key{}, ErrKind},
		{Key{Kind: 0x02, Site: 1, Visitor: 1}, ErrKind},
		{Key{Kind: '{'}, ErrKind},
		{Key{Kind: 0xff, Bucket: 29384000}, ErrKind},
	}
	for _, tt := range tests {
		t.Run(tt.key.String(), func(t *testing.T) {
			err := tt.key.Validate()
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			// An invalid key must never encode to bytes that Decode accepts.
			if _, derr := Decode(tt.key.Append(nil)); (derr == nil) != (err == nil) {
				t.Fatalf("Validate = %v but Decode(Append) = %v", err, derr)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		key  Key
		want string
	}{
		{
			Key{Kind: KindBucket, Site: SiteID("shop.example.com"), Visitor: 0xc0ffee00, Bucket: 29384000},
			"bucket site=0x9750ba2ac58d8966 visitor=0x00000000c0ffee00 bucket=29384000",
		},
		{
			Key{Kind: KindBucket, Site: 1, Visitor: math.MaxUint64, Bucket: 0},
			"bucket site=0x0000000000000001 visitor=0xffffffffffffffff bucket=0",
		},
		{
			Key{Kind: 0x7b, Bucket: 2},
			"kind(0x7b) site=0x0000000000000000 visitor=0x0000000000000000 bucket=2",
		},
		{
			Key{},
			"kind(0x00) site=0x0000000000000000 visitor=0x0000000000000000 bucket=0",
		},
	}
	for _, tt := range tests {
		if got := tt.key.String(); got != tt.want {
			t.Errorf("String() =\n %s\nwant\n %s", got, tt.want)
		}
	}
}
