// Package jsondepth bounds how deeply a JSON document nests before a
// parser sees it. fastjson, the parser of score records and of the tools,
// refuses more than 300 levels but builds its error level by level: some
// 12 ms and a 14 KB message for each such document, a cheap way to stall a
// consumer. The services' documents (request events, score records) nest
// a few levels; pkg/features' event decoder keeps to Max as it reads.
package jsondepth

import "bytes"

// Max is the deepest nesting of arrays and objects the services accept.
const Max = 64

// Exceeds reports whether data nests arrays and objects deeper than limit,
// outside strings. Only data with more than limit brackets and braces in
// all is scanned byte by byte, so ordinary documents cost two fast counts.
func Exceeds(data []byte, limit int) bool {
	if bytes.Count(data, []byte{'['})+bytes.Count(data, []byte{'{'}) <= limit {
		return false
	}
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > limit {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}
