package jsonread

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// The reader's errors, escapes and depth bound are tested through its
// users: pkg/features (TestDecodeErrors, TestDecodeValues, FuzzDecode,
// which compares it with fastjson) and the publisher's score decoder
// (TestDecodeMatchesEncodingJSON). These are the parts only one uses, and
// the word-at-a-time string scan, against a byte-at-a-time one.

func TestRead(t *testing.T) {
	doc := []byte(` {"a" : [1, "x\"y", {"k\u0031":null}, [] ] , "b":true} `)
	var keys []byte
	tp, start, end, err := Read(nil, &keys, doc)
	if err != nil {
		t.Fatal(err)
	}
	if start != 1 || end != len(doc)-1 {
		t.Fatalf("root at [%d, %d), want [1, %d)", start, end, len(doc)-1)
	}
	// Pre-order: a, its four elements, the object's member, then b.
	if len(tp) != 7 || tp[0].Next != 6 || tp[6].Next != 7 {
		t.Fatalf("tape %+v", tp)
	}
	var got []string
	for e := int32(1); e < tp[0].Next; e = tp[e].Next {
		got = append(got, string(doc[tp[e].ValStart:tp[e].ValEnd]))
	}
	if want := `1|"x\"y"|{"k\u0031":null}|[]`; strings.Join(got, "|") != want || !tp[2].ValEscaped || tp[1].ValEscaped {
		t.Errorf("elements %q (escaped %v), want %s", got, tp[2].ValEscaped, want)
	}
	if m := tp[4]; !m.KeyEscaped || string(keys[m.KeyStart:m.KeyEnd]) != "k1" || string(doc[m.ValStart:m.ValEnd]) != "null" {
		t.Errorf("escaped key: %+v %q", m, keys)
	}
	if k := string(doc[tp[6].KeyStart:tp[6].KeyEnd]); k != "b" || string(doc[tp[6].ValStart:tp[6].ValEnd]) != "true" {
		t.Errorf("member b: %q", k)
	}
	for _, bad := range []string{``, ` `, `[1,]`, `[1 2]`, `[`, `[1,{]`, `{"a":[}`, `{"a" 1}`, `[+1]`, `[-]`, `[.5]`, `1 2`, `{} x`, `nul`} {
		if _, _, _, err := Read(nil, &keys, []byte(bad)); err == nil {
			t.Errorf("Read(%q): no error", bad)
		}
	}
	for _, good := range []string{`1`, ` "x" `, `null`, `[]`, `{}`, `-0.5e3`} {
		if _, _, _, err := Read(nil, &keys, []byte(good)); err != nil {
			t.Errorf("Read(%q): %v", good, err)
		}
	}
	deep := []byte(strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1))
	if _, _, _, err := Read(nil, &keys, deep); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("Read nested %d deep: %v", MaxDepth+1, err)
	}
	ok := []byte(strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth))
	if _, _, _, err := Read(nil, &keys, ok); err != nil {
		t.Errorf("Read nested %d deep: %v", MaxDepth, err)
	}
}

func TestNumbers(t *testing.T) {
	for _, tc := range []struct {
		in      string
		f       float64
		n       int
		fok, ok bool
	}{
		{"12", 12, 12, true, true},
		{"-1.5e3", -1500, 0, true, false},
		{"1.5", 1.5, 0, true, false},
		{"1-2", 0, 0, false, false},
		{`"1"`, 0, 0, false, false},
	} {
		f, ferr := Value(tc.in).Float()
		n, nerr := Value(tc.in).Int()
		if (ferr == nil) != tc.fok || (nerr == nil) != tc.ok || (tc.fok && f != tc.f) || (tc.ok && n != tc.n) {
			t.Errorf("%s: Float %v %v, Int %v %v", tc.in, f, ferr, n, nerr)
		}
	}
}

// TestFloatShortest: the shortest form of a float64, as encoders write
// it, reads back as the same float64 whether fastfloat or strconv parses
// it, long and short, signed or not, with an exponent or not; and an
// invalid number of any length is an error.
func TestFloatShortest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100_000 {
		x := rng.Float64() * math.Pow(10, float64(rng.IntN(40)-20))
		switch i % 4 {
		case 1:
			x = -x
		case 2:
			x = math.Round(x*1000) / 1000 // a short form
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if got, err := Value(s).Float(); err != nil || got != x {
			t.Fatalf("%s: %v %v, want %v", s, got, err, x)
		}
	}
	for _, s := range []string{"1.2345678901234567x", "-12345678901234567.8.9", "1.2.3"} {
		if f, err := Value(s).Float(); err == nil {
			t.Errorf("%s: %v, want an error", s, f)
		}
	}
}

// stringEndByByte is stringEnd one byte at a time: what its word and
// vector searches must agree with.
func stringEndByByte(b []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1, escaped, true
		case '\\':
			escaped = true
			j++
		}
	}
	return 0, false, false
}

// TestStringEnd compares StringEnd with a byte-at-a-time reading on every
// string of up to eight bytes over quotes, backslashes and letters, each
// after and before plain bytes, so that it falls anywhere in the words
// that stringEnd reads at once, and at the end of the document.
func TestStringEnd(t *testing.T) {
	alphabet := []byte{'a', '"', '\\'}
	var check func(s []byte)
	check = func(s []byte) {
		for _, pad := range []int{0, 3, 8, 31, 32, 40} {
			b := append([]byte{'"'}, strings.Repeat("x", pad)...)
			b = append(b, s...)
			b = append(b, strings.Repeat("y", pad%9)...)
			gotEnd, gotEsc, gotOK := StringEnd(b, 0)
			end, esc, ok := stringEndByByte(b, 0)
			if gotEnd != end || gotEsc != esc || gotOK != ok {
				t.Fatalf("StringEnd(%q) = %d, %v, %v; want %d, %v, %v", b, gotEnd, gotEsc, gotOK, end, esc, ok)
			}
		}
		if len(s) == 8 {
			return
		}
		for _, c := range alphabet {
			check(append(s, c))
		}
	}
	check(nil)
	long := `"` + strings.Repeat(`abc\"def\\`, 20) + `xyz"`
	for i := 0; i < len(long); i++ {
		if long[i] != '"' {
			continue
		}
		gotEnd, gotEsc, gotOK := StringEnd([]byte(long), i)
		end, esc, ok := stringEndByByte([]byte(long), i)
		if gotEnd != end || gotEsc != esc || gotOK != ok {
			t.Fatalf("StringEnd(long, %d) = %d, %v, %v; want %d, %v, %v", i, gotEnd, gotEsc, gotOK, end, esc, ok)
		}
	}
}

// FuzzStringEnd compares StringEnd with a byte-at-a-time reading.
func FuzzStringEnd(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"abcdefgh\\"`, `"abcdefghij\"`, `"` + strings.Repeat("y", 70) + `\"z"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := range b {
			gotEnd, gotEsc, gotOK := StringEnd(b, i)
			end, esc, ok := stringEndByByte(b, i)
			if gotEnd != end || gotEsc != esc || gotOK != ok {
				t.Fatalf("StringEnd(%q, %d) = %d, %v, %v; want %d, %v, %v", b, i, gotEnd, gotEsc, gotOK, end, esc, ok)
			}
		}
	})
}
