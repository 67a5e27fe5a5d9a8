// Package jsonread reads the JSON documents of the hot paths, request
// events (pkg/features) and score records (the publisher), without a
// general parser: one pass checks the structure of the whole document
// (braces, brackets, commas, colons, quotes, literals, and MaxDepth
// with the root as level 1) and notes where each member's key and value
// are; the caller then decodes only the values it reads. A general parser
// builds a value for every field and unescapes every string, most of which
// no caller reads (fastjson did that here before; see BenchmarkDecode in
// pkg/features).
//
// It is as lenient inside values as fastjson: a bad escape sequence stays
// as written, raw control characters and invalid UTF-8 pass through, and
// numbers are only loosely checked (a digit, after an optional '-', then
// digits, signs, '.', 'e' and 'E') until a caller parses them. Documents
// are smaller than 2 GiB, as a Kafka message is.
package jsonread

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson/fastfloat"
)

// MaxDepth is the deepest nesting of arrays and objects accepted, the root
// counting as 1. The services' documents nest a few levels; a parser
// without a bound is a cheap way to stall a consumer (fastjson refused
// more than 300 levels, but took some 12 ms and wrote a 14 KB error for
// each such document).
const MaxDepth = 64

// Value is one JSON value as written in its document: a string with its
// quotes, an object with its braces, and so on.
type Value []byte

// Kind is the value's first byte, which tells its type: '"', '{', '[',
// 't' or 'f' (boolean), 'n' (null), or '0' for a number.
func (v Value) Kind() byte {
	switch c := v[0]; c {
	case '"', '{', '[', 't', 'f', 'n':
		return c
	}
	return '0'
}

// TypeName names the value's JSON type for error messages.
func (v Value) TypeName() string {
	switch v.Kind() {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// Float parses the number v as strconv.ParseFloat does, to the same
// float64 (with fastjson's faster fastfloat where it is exact), without
// copying it.
func (v Value) Float() (float64, error) {
	if v.Kind() != '0' {
		return 0, fmt.Errorf("want a number, got %s", v.TypeName())
	}
	s := unsafe.String(unsafe.SliceData(v), len(v))
	parse := fastfloat.Parse
	if !plainShort(s) {
		parse = parseFloat64
	}
	f, err := parse(s)
	if err != nil { // its error holds the string, which aliases v: write our own
		return 0, fmt.Errorf("want a number, got %s", Quote(v))
	}
	return f, nil
}

// plainShort reports whether fastfloat parses the number s exactly, and
// faster than strconv: without an exponent (it scales by a power of ten
// after dividing by one, rounding twice) and of fewer than 17 digits and
// points (from there it reads the number through, then hands it to
// strconv: the shortest forms of most float64 values have 16 or 17
// digits).
func plainShort(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) >= 17 {
		return false
	}
	for i := range len(s) {
		if s[i] == 'e' || s[i] == 'E' {
			return false
		}
	}
	return true
}

func parseFloat64(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

// Int parses the number v as an integer, as strconv.Atoi does, without
// copying it.
func (v Value) Int() (int, error) {
	if v.Kind() != '0' {
		return 0, fmt.Errorf("want a number, got %s", v.TypeName())
	}
	n, err := strconv.Atoi(unsafe.String(unsafe.SliceData(v), len(v)))
	if err != nil { // as in Float
		return 0, fmt.Errorf("want an integer, got %s", Quote(v))
	}
	return n, nil
}

// Quote quotes a value for an error message, cut to 64 bytes: reasons go
// to the dead-letter topic and the log, beside the message itself.
func Quote(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "..."
	}
	return strconv.Quote(string(b))
}

// Member is one key of an object and its value, as offsets: the value's
// in the document, the key's in the document or, when KeyEscaped, in the
// unescaped keys that Read wrote. Offsets rather than slices keep
// members free of pointers, which makes noting them cheaper.
// An array's elements are members without keys.
type Member struct {
	KeyStart, KeyEnd int32
	ValStart, ValEnd int32
	// Next is the index of the member after this one and its
	// descendants: its next sibling, or the end of its container's.
	Next       int32
	KeyEscaped bool
	ValEscaped bool // a string value with a backslash
}

// Error is a document that is not JSON, at byte Pos.
type Error struct {
	Pos    int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("invalid JSON at byte %d: %s", e.Pos, e.Reason) }

// isSpace reports JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// skipSpace returns the index of the first non-space byte of b at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && isSpace(b[i]) {
		i++
	}
	return i
}

// unexpected is the error for b[i], or for the end of b.
func unexpected(b []byte, i int, want string) *Error {
	if i >= len(b) {
		return &Error{Pos: i, Reason: "unexpected end, want " + want}
	}
	return &Error{Pos: i, Reason: fmt.Sprintf("unexpected %s, want %s", strconv.QuoteRune(rune(b[i])), want)}
}

// stringEnd returns the index after the closing quote of the string that
// opens at b[i], and whether it holds a backslash. It looks at eight bytes
// at a time for a quote or a backslash.
func stringEnd(b []byte, i int) (int, bool, *Error) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	esc := false
	j := i + 1
	for j < len(b) {
		if len(b)-j >= 8 {
			x := binary.LittleEndian.Uint64(b[j:])
			q, bs := x^(ones*'"'), x^(ones*'\\')
			// A byte of q or bs is zero where x has a quote or a
			// backslash; the lowest high bit set below marks the first.
			m := (q-ones)&^q&highs | (bs-ones)&^bs&highs
			if m == 0 {
				j += 8
				continue
			}
			j += bits.TrailingZeros64(m) / 8
		}
		switch b[j] {
		case '"':
			return j + 1, esc, nil
		case '\\':
			esc = true
			j += 2
		default:
			j++
		}
	}
	return 0, false, &Error{Pos: i, Reason: "unterminated string"}
}

// StringEnd returns the index after the closing quote of the string that
// opens at b[i] (a '"'), and whether it holds a backslash, as Read reads
// strings; ok is false when it is not closed. It is for callers that read
// a document of a known form without Read.
func StringEnd(b []byte, i int) (end int, escaped, ok bool) {
	end, escaped, err := stringEnd(b, i)
	return end, escaped, err == nil
}

// NumberEnd returns the index after the number that starts at b[i], as
// Read reads numbers (loosely, see the package doc); ok is false when
// there is none.
func NumberEnd(b []byte, i int) (end int, ok bool) {
	end, err := numberEnd(b, i)
	return end, err == nil
}

// scalarEnd returns the index after the string, number or literal that
// starts at b[i], and whether it is a string with a backslash.
func scalarEnd(b []byte, i int) (int, bool, *Error) {
	if i >= len(b) {
		return 0, false, unexpected(b, i, "a value")
	}
	var end int
	var err *Error
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case 't':
		end, err = literalEnd(b, i, "true")
	case 'f':
		end, err = literalEnd(b, i, "false")
	case 'n':
		end, err = literalEnd(b, i, "null")
	default:
		end, err = numberEnd(b, i)
	}
	return end, false, err
}

// numberEnd returns the index after the number that starts at b[i]: an
// optional '-' and a digit, then checked only loosely (see above).
func numberEnd(b []byte, i int) (int, *Error) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j == len(b) || b[j]-'0' > 9 { // a number starts with a digit, after its sign
		return 0, unexpected(b, j, "a value")
	}
	for j < len(b) && (b[j]-'0' <= 9 || b[j] == '-' || b[j] == '+' || b[j] == '.' || b[j]|0x20 == 'e') {
		j++
	}
	return j, nil
}

func literalEnd(b []byte, i int, lit string) (int, *Error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return 0, &Error{Pos: i, Reason: "want " + lit}
	}
	return i + len(lit), nil
}

// Unescape appends the string s (without its quotes) to dst with its
// escape sequences decoded. A sequence that is not valid stays as written.
func Unescape(dst, s []byte) []byte {
	for len(s) > 0 {
		n := bytes.IndexByte(s, '\\')
		if n < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:n]...)
		s = s[n+1:]
		if len(s) == 0 {
			return append(dst, '\\')
		}
		c := s[0]
		s = s[1:]
		switch c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s)
			if !ok {
				dst = append(dst, `\u`...)
				break
			}
			xs := s[:4]
			s = s[4:]
			if !utf16.IsSurrogate(r) {
				dst = utf8.AppendRune(dst, r)
				break
			}
			var r2 rune
			if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
				r2, ok = hex4(s[2:])
			} else {
				ok = false
			}
			if !ok { // half a surrogate pair: kept as written
				dst = append(append(dst, `\u`...), xs...)
				break
			}
			dst = utf8.AppendRune(dst, utf16.DecodeRune(r, r2))
			s = s[6:]
		default:
			dst = append(dst, '\\', c)
		}
	}
	return dst
}

// hex4 reads four hexadecimal digits.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// ParseUint reads b as a decimal integer without sign, faster than
// strconv.ParseUint on the short numbers of a document; false for anything
// else or a value beyond 64 bits.
func ParseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		d := uint64(c) - '0'
		if d > 9 {
			return 0, false
		}
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// Read reads the JSON document b in one pass, checking all of it, and
// returns the span [start, end) of its root value with the members (or
// elements) of the root and all below them, appended to dst in document
// order; Next links each to the next of its container: the root's are
// dst[0], dst[dst[0].Next], and so on up to len(dst); those of a member k
// holding an object or array are k+1, dst[k+1].Next, ... up to dst[k].Next.
// Escaped keys are unescaped into *keys.
func Read(dst []Member, keys *[]byte, b []byte) (_ []Member, start, end int, err *Error) {
	start = skipSpace(b, 0)
	switch {
	case start == len(b):
		return dst, 0, 0, &Error{Pos: start, Reason: "empty document"}
	case b[start] == '{' || b[start] == '[':
		dst, end, err = readContainer(dst, keys, b, start, 1)
	default:
		end, _, err = scalarEnd(b, start)
	}
	if err != nil {
		return dst, 0, 0, err
	}
	if j := skipSpace(b, end); j < len(b) {
		return dst, 0, 0, &Error{Pos: j, Reason: "data after the value"}
	}
	return dst, start, end, nil
}

func readContainer(dst []Member, keys *[]byte, b []byte, i, depth int) ([]Member, int, *Error) {
	if depth > MaxDepth {
		return dst, 0, &Error{Pos: i, Reason: fmt.Sprintf("nested deeper than %d", MaxDepth)}
	}
	object := b[i] == '{'
	closer := byte(']')
	if object {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return dst, i + 1, nil
	}
	for {
		// The member is written in place, field by field: built on the
		// stack and copied, its small fields stalled the copy's wide loads.
		k := len(dst)
		dst = append(dst, Member{})
		m := &dst[k]
		if object {
			if i >= len(b) || b[i] != '"' {
				return dst, 0, unexpected(b, i, "a key")
			}
			end, esc, err := stringEnd(b, i)
			if err != nil {
				return dst, 0, err
			}
			m.KeyStart, m.KeyEnd = int32(i+1), int32(end-1)
			if esc {
				start := int32(len(*keys))
				*keys = Unescape(*keys, b[i+1:end-1])
				m.KeyStart, m.KeyEnd, m.KeyEscaped = start, int32(len(*keys)), true
			}
			if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
				return dst, 0, unexpected(b, i, "':'")
			}
			i = skipSpace(b, i+1)
		}
		m.ValStart = int32(i)
		var err *Error
		if i < len(b) && (b[i] == '{' || b[i] == '[') {
			dst, i, err = readContainer(dst, keys, b, i, depth+1)
			m = &dst[k] // dst may have moved
		} else {
			i, m.ValEscaped, err = scalarEnd(b, i)
		}
		if err != nil {
			return dst, 0, err
		}
		m.ValEnd, m.Next = int32(i), int32(len(dst))
		switch i = skipSpace(b, i); {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == closer:
			return dst, i + 1, nil
		default:
			return dst, 0, unexpected(b, i, "',' or "+strconv.QuoteRune(rune(closer)))
		}
	}
}
