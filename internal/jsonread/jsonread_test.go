package jsonread

import (
	"strings"
	"testing"
)

// The reader's errors, escapes and depth bound are tested through its
// users: pkg/features (TestDecodeErrors, TestDecodeValues, FuzzDecode,
// which compares it with fastjson) and the publisher's score decoder
// (TestDecodeMatchesEncodingJSON). These are the parts only one uses.

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
