package jsonread

import (
	"strings"
	"testing"
)

// The reader's errors, escapes and depth bound are tested through its
// users: pkg/features (TestDecodeErrors, TestDecodeValues, FuzzDecode,
// which compares it with fastjson) and the publisher's score decoder
// (TestDecodeMatchesEncodingJSON). These are the parts only one uses.

func TestMembersAndElements(t *testing.T) {
	doc := []byte(` {"a" : [1, "x\"y", {"k\u0031":null}, [] ] , "b":true} `)
	var keys []byte
	ms, end, err := Members(nil, &keys, doc, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if end != len(doc)-1 || len(ms) != 2 {
		t.Fatalf("end %d, %d members", end, len(ms))
	}
	if k := string(doc[ms[1].KeyStart:ms[1].KeyEnd]); k != "b" || string(doc[ms[1].ValStart:ms[1].ValEnd]) != "true" {
		t.Errorf("member b: %q", k)
	}
	es, _, err := Elements(nil, doc, int(ms[0].ValStart), 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, string(doc[e.ValStart:e.ValEnd]))
	}
	if want := `1|"x\"y"|{"k\u0031":null}|[]`; strings.Join(got, "|") != want || !es[1].ValEscaped || es[0].ValEscaped {
		t.Errorf("elements %q (escaped %v), want %s", got, es[1].ValEscaped, want)
	}
	inner, _, err := Members(nil, &keys, doc, int(es[2].ValStart), 3)
	if err != nil || len(inner) != 1 || !inner[0].KeyEscaped || string(keys[inner[0].KeyStart:inner[0].KeyEnd]) != "k1" {
		t.Errorf("escaped key: %+v %q %v", inner, keys, err)
	}
	for _, bad := range []string{`[1,]`, `[1 2]`, `[`, `[1,{]`} {
		if _, _, err := Elements(nil, []byte(bad), 0, 1); err == nil {
			t.Errorf("Elements(%s): no error", bad)
		}
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
