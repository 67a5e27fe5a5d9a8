package features

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/anomalyd/anomalyd/internal/jsondepth"
)

// The Decoder's JSON reader. An event's top-level object is read in one
// pass that checks the structure of the whole document (braces, brackets,
// commas, colons, quotes, literals, jsondepth.Max with the root object as
// level 1) and notes each key
// with the span of its value; only the values of the mapped fields are then
// decoded. A general parser (fastjson, before) builds a value for every
// field of the event, most of which no feature reads; see BenchmarkDecode.
//
// It is as lenient inside values as fastjson was: a bad escape sequence
// stays as written, raw control characters and invalid UTF-8 pass through,
// and numbers that no field reads are only loosely checked (digits, signs,
// '.', 'e' and 'E').

// jsonValue is one JSON value as written in the Decoder's buffer: a string
// with its quotes, an object with its braces, and so on.
type jsonValue []byte

// kind is the value's first byte, which tells its type: '"', '{', '[',
// 't' or 'f' (boolean), 'n' (null), or '0' for a number.
func (v jsonValue) kind() byte {
	switch c := v[0]; c {
	case '"', '{', '[', 't', 'f', 'n':
		return c
	}
	return '0'
}

// typeName names the value's JSON type for error messages.
func (v jsonValue) typeName() string {
	switch v.kind() {
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

// member is one key of an object and its value, as offsets: the value's
// in the document, the key's in the document or, when it was escaped, in
// the unescaped keys. Offsets rather than slices keep members free of
// pointers, which makes noting them several times cheaper.
type member struct {
	keyStart, keyEnd int32
	valStart, valEnd int32
	keyEscaped       bool
	valEscaped       bool // a string value with a backslash
}

// jsonError is a document that is not JSON, at byte pos.
type jsonError struct {
	pos    int
	reason string
}

func (e *jsonError) fieldError() *FieldError {
	return &FieldError{Reason: fmt.Sprintf("invalid JSON at byte %d: %s", e.pos, e.reason)}
}

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
func unexpected(b []byte, i int, want string) *jsonError {
	if i >= len(b) {
		return &jsonError{pos: i, reason: "unexpected end, want " + want}
	}
	return &jsonError{pos: i, reason: fmt.Sprintf("unexpected %s, want %s", strconv.QuoteRune(rune(b[i])), want)}
}

// stringEnd returns the index after the closing quote of the string that
// opens at b[i], and whether it holds a backslash. It looks at eight bytes
// at a time for a quote or a backslash.
func stringEnd(b []byte, i int) (int, bool, *jsonError) {
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
	return 0, false, &jsonError{pos: i, reason: "unterminated string"}
}

// valueEnd returns the index after the value that starts at b[i], checking
// its structure, and whether it is a string with a backslash; depth is the
// nesting of the value's container.
func valueEnd(b []byte, i, depth int) (int, bool, *jsonError) {
	if i >= len(b) {
		return 0, false, unexpected(b, i, "a value")
	}
	var end int
	var err *jsonError
	switch c := b[i]; c {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		end, err = containerEnd(b, i, depth+1)
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

// numberEnd returns the index after the number that starts at b[i],
// checked only loosely (see above).
func numberEnd(b []byte, i int) (int, *jsonError) {
	j := i
	for j < len(b) && (b[j]-'0' <= 9 || b[j] == '-' || b[j] == '+' || b[j] == '.' || b[j]|0x20 == 'e') {
		j++
	}
	if j == i {
		return 0, unexpected(b, i, "a value")
	}
	return j, nil
}

func literalEnd(b []byte, i int, lit string) (int, *jsonError) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return 0, &jsonError{pos: i, reason: "want " + lit}
	}
	return i + len(lit), nil
}

// containerEnd returns the index after the object or array that opens at
// b[i], at nesting depth.
func containerEnd(b []byte, i, depth int) (int, *jsonError) {
	if depth > jsondepth.Max {
		return 0, &jsonError{pos: i, reason: fmt.Sprintf("nested deeper than %d", jsondepth.Max)}
	}
	object := b[i] == '{'
	closer := byte(']')
	if object {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		var err *jsonError
		if object {
			if i >= len(b) || b[i] != '"' {
				return 0, unexpected(b, i, "a key")
			}
			if i, _, err = stringEnd(b, i); err != nil {
				return 0, err
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return 0, unexpected(b, i, "':'")
			}
			i = skipSpace(b, i+1)
		}
		if i, _, err = valueEnd(b, i, depth); err != nil {
			return 0, err
		}
		switch i = skipSpace(b, i); {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == closer:
			return i + 1, nil
		default:
			return 0, unexpected(b, i, "',' or "+strconv.QuoteRune(rune(closer)))
		}
	}
}

// members appends the members of the object that opens at b[i] to dst and
// returns them with the index after the object; depth is the object's
// nesting. Escaped keys are unescaped into *keys. Documents are smaller
// than 2 GiB (a Kafka message is).
func members(dst []member, keys *[]byte, b []byte, i, depth int) ([]member, int, *jsonError) {
	if depth > jsondepth.Max {
		return dst, 0, &jsonError{pos: i, reason: fmt.Sprintf("nested deeper than %d", jsondepth.Max)}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return dst, i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, 0, unexpected(b, i, "a key")
		}
		end, esc, err := stringEnd(b, i)
		if err != nil {
			return dst, 0, err
		}
		// The member is written in place: built on the stack and copied,
		// its small fields stalled the copy's wide loads.
		dst = append(dst, member{})
		m := &dst[len(dst)-1]
		m.keyStart, m.keyEnd = int32(i+1), int32(end-1)
		if esc {
			m.keyStart = int32(len(*keys))
			*keys = unescape(*keys, b[i+1:end-1])
			m.keyEnd, m.keyEscaped = int32(len(*keys)), true
		}
		if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
			return dst, 0, unexpected(b, i, "':'")
		}
		i = skipSpace(b, i+1)
		m.valStart = int32(i)
		if i, m.valEscaped, err = valueEnd(b, i, depth); err != nil {
			return dst, 0, err
		}
		m.valEnd = int32(i)
		switch i = skipSpace(b, i); {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return dst, i + 1, nil
		default:
			return dst, 0, unexpected(b, i, "',' or '}'")
		}
	}
}

// unescape appends the string s (without its quotes) to dst with its
// escape sequences decoded. A sequence that is not valid stays as written.
func unescape(dst, s []byte) []byte {
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

// parseUint reads b as a decimal integer without sign, faster than
// strconv.ParseUint on the short numbers of an event; false for anything
// else or a value beyond 64 bits.
func parseUint(b []byte) (uint64, bool) {
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
