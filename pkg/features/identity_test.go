package features

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"net/netip"
	"strings"
	"testing"

	"github.com/dchest/siphash"
)

var (
	testSecret  = []byte("0123456789abcdef-test-secret")
	otherSecret = []byte("0123456789abcdef-other-secret")
)

const chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func newIdentity(t testing.TB, mode IdentityMode, secret []byte) *Identity {
	t.Helper()
	id, err := NewIdentity(mode, secret)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func visitor(t testing.TB, id *Identity, ev *Event) uint64 {
	t.Helper()
	v, err := id.Visitor(ev)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testEvent() *Event {
	return &Event{
		Site:      "shop.example.com",
		ClientIP:  netip.MustParseAddr("203.0.113.77"),
		UserAgent: []byte(chromeUA),
		JA3:       []byte("cd08e31494f9531f560d64c695473da9"),
		JA4:       []byte("t13d1516h2_8daaf6152771_b186095e22b6"),
	}
}

func TestIdentityModeNames(t *testing.T) {
	for _, m := range []IdentityMode{IdentityIP, IdentityIPUA, IdentityJA3, IdentityJA4} {
		got, err := ParseIdentityMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseIdentityMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	for _, s := range []string{"", "IP", "ip+UA", "ua", "ja5", "identity(4)"} {
		if _, err := ParseIdentityMode(s); !errors.Is(err, ErrIdentityMode) {
			t.Errorf("ParseIdentityMode(%q): error %v, want ErrIdentityMode", s, err)
		}
	}
	if got := IdentityMode(9).String(); got != "identity(9)" {
		t.Errorf("String of an unknown mode = %q", got)
	}
	if IdentityIP.Fingerprint() || IdentityIPUA.Fingerprint() || !IdentityJA3.Fingerprint() || !IdentityJA4.Fingerprint() {
		t.Error("Fingerprint is true exactly for ja3 and ja4")
	}

	var mode IdentityMode
	fs := flag.NewFlagSet("detector", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	fs.Var(&mode, "identity", "visitor identity")
	if err := fs.Parse([]string{"-identity", "ip+ua"}); err != nil || mode != IdentityIPUA {
		t.Errorf("flag: mode %v, error %v", mode, err)
	}
	if err := fs.Parse([]string{"-identity", "cookie"}); err == nil {
		t.Error("flag: no error for an unknown mode")
	}
}

func TestNewIdentity(t *testing.T) {
	tests := []struct {
		name   string
		mode   IdentityMode
		secret []byte
		want   error
	}{
		{"nil secret", IdentityIP, nil, ErrIdentityKey},
		{"15 bytes", IdentityIP, make([]byte, 15), ErrIdentityKey},
		{"16 bytes", IdentityIP, make([]byte, 16), nil},
		{"64 bytes", IdentityJA4, make([]byte, 64), nil},
		{"unknown mode", IdentityMode(4), make([]byte, 16), ErrIdentityMode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := NewIdentity(tc.mode, tc.secret)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err == nil && id.Mode() != tc.mode {
				t.Errorf("Mode() = %v, want %v", id.Mode(), tc.mode)
			}
		})
	}
	if _, err := NewIdentity(IdentityIP, []byte("short")); err == nil || err.Error() != "identity key too short: 5 bytes, want at least 16" {
		t.Errorf("error %v", err)
	}
}

// TestSipHashKeyOrder checks dchest/siphash against the SipHash paper's test
// vector (key 00..0f, message 00..0e), so that "the 16-byte key K" in the
// Identity doc means what any reference implementation means by it.
func TestSipHashKeyOrder(t *testing.T) {
	var key [16]byte
	msg := make([]byte, 15)
	for i := range key {
		key[i] = byte(i)
	}
	for i := range msg {
		msg[i] = byte(i)
	}
	k0, k1 := binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:])
	if got := siphash.Hash(k0, k1, msg); got != 0xa129ca6149be45e5 {
		t.Fatalf("SipHash-2-4 test vector: %#x, want 0xa129ca6149be45e5", got)
	}
}

// TestVisitorSpec computes ids from the definition in the Identity doc,
// independently of the code, and pins one value of each mode (checked
// against a separate SipHash-2-4 implementation in Python): a change here
// orphans every visitor's Redis keys and detections at the edge.
func TestVisitorSpec(t *testing.T) {
	k := sha256.Sum256([]byte("anomalyd visitor id v1\x00" + string(testSecret)))
	k0, k1 := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:16])
	ev := testEvent()
	ip16 := "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xcb\x00\x71\x4d" // ::ffff:203.0.113.77
	tests := []struct {
		mode   IdentityMode
		msg    string
		pinned uint64
	}{
		{IdentityIP, "\x00" + ip16, 0x07eeb41beb370dd3},
		{IdentityIPUA, "\x01" + ip16 + chromeUA, 0x2d70bee2c143622f},
		{IdentityJA3, "\x02cd08e31494f9531f560d64c695473da9", 0x57b0434545ca009f},
		{IdentityJA4, "\x03t13d1516h2_8daaf6152771_b186095e22b6", 0x4c13b7b052eec98f},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			got := visitor(t, newIdentity(t, tc.mode, testSecret), ev)
			if want := siphash.Hash(k0, k1, []byte(tc.msg)); got != want {
				t.Errorf("id %#016x, the documented definition gives %#016x", got, want)
			}
			if got != tc.pinned {
				t.Errorf("id %#016x, pinned %#016x: visitor ids changed", got, tc.pinned)
			}
		})
	}
}

func TestVisitor(t *testing.T) {
	ev := testEvent()
	tests := []struct {
		name       string
		a, b       *Identity
		evA, evB   *Event
		wantEquals bool
	}{
		{"same input, same id", newIdentity(t, IdentityIPUA, testSecret), newIdentity(t, IdentityIPUA, testSecret), ev, testEvent(), true},
		{"other secret", newIdentity(t, IdentityIP, testSecret), newIdentity(t, IdentityIP, otherSecret), ev, ev, false},
		{"secret differs after 16 bytes", newIdentity(t, IdentityIP, []byte("0123456789abcdefA")), newIdentity(t, IdentityIP, []byte("0123456789abcdefB")), ev, ev, false},
		{"ip vs ip+ua with no user agent", newIdentity(t, IdentityIP, testSecret), newIdentity(t, IdentityIPUA, testSecret), ev, with(ev, func(e *Event) { e.UserAgent = nil }), false},
		{"ja3 vs ja4 of the same text", newIdentity(t, IdentityJA3, testSecret), newIdentity(t, IdentityJA4, testSecret), ev, with(ev, func(e *Event) { e.JA4 = e.JA3 }), false},
		{"ip ignores the user agent", newIdentity(t, IdentityIP, testSecret), newIdentity(t, IdentityIP, testSecret), ev, with(ev, func(e *Event) { e.UserAgent = []byte("curl/8.5.0") }), true},
		{"ip+ua sees the user agent", newIdentity(t, IdentityIPUA, testSecret), newIdentity(t, IdentityIPUA, testSecret), ev, with(ev, func(e *Event) { e.UserAgent = []byte("curl/8.5.0") }), false},
		{"ip+ua sees the ip", newIdentity(t, IdentityIPUA, testSecret), newIdentity(t, IdentityIPUA, testSecret), ev, with(ev, func(e *Event) { e.ClientIP = netip.MustParseAddr("203.0.113.78") }), false},
		{"ipv4 and its mapped form", newIdentity(t, IdentityIP, testSecret), newIdentity(t, IdentityIP, testSecret), ev, with(ev, func(e *Event) { e.ClientIP = netip.MustParseAddr("::ffff:203.0.113.77") }), true},
		{"zone ignored", newIdentity(t, IdentityIP, testSecret), newIdentity(t, IdentityIP, testSecret),
			with(ev, func(e *Event) { e.ClientIP = netip.MustParseAddr("fe80::1") }), with(ev, func(e *Event) { e.ClientIP = netip.MustParseAddr("fe80::1%eth0") }), true},
		{"ja3 ignores the ip", newIdentity(t, IdentityJA3, testSecret), newIdentity(t, IdentityJA3, testSecret), ev, with(ev, func(e *Event) { e.ClientIP = netip.MustParseAddr("2001:db8::1") }), true},
		{"fingerprint case matters", newIdentity(t, IdentityJA3, testSecret), newIdentity(t, IdentityJA3, testSecret), ev, with(ev, func(e *Event) { e.JA3 = []byte(strings.ToUpper(string(e.JA3))) }), false},
		{"long user agent", newIdentity(t, IdentityIPUA, testSecret), newIdentity(t, IdentityIPUA, testSecret),
			with(ev, func(e *Event) { e.UserAgent = []byte(strings.Repeat("x", 1000) + "a") }), with(ev, func(e *Event) { e.UserAgent = []byte(strings.Repeat("x", 1000) + "b") }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := visitor(t, tc.a, tc.evA), visitor(t, tc.b, tc.evB)
			if (a == b) != tc.wantEquals {
				t.Errorf("ids %#016x and %#016x: equal %v, want %v", a, b, a == b, tc.wantEquals)
			}
		})
	}
}

// with returns a copy of ev changed by f.
func with(ev *Event, f func(*Event)) *Event {
	c := *ev
	f(&c)
	return &c
}

func TestVisitorMissingFields(t *testing.T) {
	tests := []struct {
		mode IdentityMode
		ev   *Event
		want error
	}{
		{IdentityIP, with(testEvent(), func(e *Event) { e.ClientIP = netip.Addr{} }), ErrNoClientIP},
		{IdentityIPUA, with(testEvent(), func(e *Event) { e.ClientIP = netip.Addr{} }), ErrNoClientIP},
		{IdentityJA3, with(testEvent(), func(e *Event) { e.JA3 = nil }), ErrNoFingerprint},
		{IdentityJA3, with(testEvent(), func(e *Event) { e.JA3 = []byte{} }), ErrNoFingerprint},
		{IdentityJA4, with(testEvent(), func(e *Event) { e.JA4 = nil }), ErrNoFingerprint},
	}
	for _, tc := range tests {
		if _, err := newIdentity(t, tc.mode, testSecret).Visitor(tc.ev); err != tc.want {
			t.Errorf("%v: error %v, want %v", tc.mode, err, tc.want)
		}
	}
	// The other fingerprint, or a missing one, does not matter to IP modes.
	ev := with(testEvent(), func(e *Event) { e.JA3, e.JA4 = nil, nil })
	for _, mode := range []IdentityMode{IdentityIP, IdentityIPUA} {
		visitor(t, newIdentity(t, mode, testSecret), ev)
	}
	visitor(t, newIdentity(t, IdentityJA4, testSecret), with(testEvent(), func(e *Event) { e.JA3 = nil }))
}

func TestVisitorAllocs(t *testing.T) {
	ev := testEvent()
	for _, mode := range []IdentityMode{IdentityIP, IdentityIPUA, IdentityJA3, IdentityJA4} {
		id := newIdentity(t, mode, testSecret)
		if n := testing.AllocsPerRun(100, func() { visitor(t, id, ev) }); n != 0 {
			t.Errorf("%v: Visitor allocates %v times", mode, n)
		}
	}
	id := newIdentity(t, IdentityJA3, testSecret)
	noJA3 := with(ev, func(e *Event) { e.JA3 = nil })
	if n := testing.AllocsPerRun(100, func() { _, _ = id.Visitor(noJA3) }); n != 0 {
		t.Errorf("missing fingerprint: Visitor allocates %v times", n)
	}
}

func BenchmarkVisitor(b *testing.B) {
	ev := testEvent()
	for _, mode := range []IdentityMode{IdentityIP, IdentityIPUA, IdentityJA3, IdentityJA4} {
		b.Run("mode="+mode.String(), func(b *testing.B) {
			id := newIdentity(b, mode, testSecret)
			b.ReportAllocs()
			var sum uint64
			for b.Loop() {
				v, err := id.Visitor(ev)
				if err != nil {
					b.Fatal(err)
				}
				sum += v
			}
			if sum == 0 {
				b.Fatal("no ids")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
		})
	}
}
