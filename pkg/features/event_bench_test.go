package features

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// logpushStruct is the Logpush event for a struct-tag decoder. Its keys are
// fixed at compile time, so it cannot serve a runtime field map; it is here
// as the reference point.
type logpushStruct struct {
	EdgeStartTimestamp     int64
	ZoneName               string
	ClientRequestHost      string
	ClientIP               string
	ClientRequestMethod    string
	ClientRequestPath      string
	ClientRequestURI       string
	ClientRequestUserAgent string
	ClientRequestReferer   string
	EdgeResponseStatus     int
	ClientASN              uint32
	ClientCountry          string
	JA3Hash                string
	JA4                    string
	RayID                  string
}

// BenchmarkDecode measures Decoder.Decode on each supported shape, and
// compares the JSON step with other decoders on one 14-field Logpush event.
//
// lib=anomalyd/out=event is the whole of Decode: JSON, field lookup through
// the field map, timestamp, IP and site. The other rows are the JSON step
// alone of general parsers (the 15 Logpush keys as raw values, or struct
// fields), on which the Decoder first used fastjson. Rows for modules not
// in go.mod were measured with the same event and method in a scratch
// module, on the 2-core AMD EPYC development machine, shared and busy, so
// expect +-20% (medians of 5):
//
//	candidate                                ns/op  allocs/op  runtime keys
//	encoding/json, struct                     8930         15  no
//	encoding/json, map[string]any            13800         65  yes
//	segmentio/encoding/json v0.5.4, struct    1420         11  no
//	segmentio/encoding/json, map              4780         44  yes
//	goccy/go-json v0.12.0, struct              950         11  no
//	goccy/go-json, map                        3040         44  yes
//	go-json-experiment/json, struct           1690          0  no
//	go-json-experiment/jsontext, tokens       1550          0  yes
//	buger/jsonparser v1.6.1, EachKey          1680          0  yes, but no validation
//	valyala/fastjson v1.6.10, Parser + Get     910          0  yes
//
// A general parser builds a value for every field and unescapes every
// string; the Decoder's own reader (internal/jsonread) checks the whole document's
// structure but decodes only the mapped fields, and whole Decode costs
// less than fastjson's JSON step alone (lib=fastjson/out=values, in the
// same run). The README has the figures.
func BenchmarkDecode(b *testing.B) {
	rfc3339 := strings.Replace(logpushEvent, `1763721059123456789`, `"2025-11-21T10:30:59.123456789Z"`, 1)
	events := []struct {
		name   string
		fields FieldMap
		input  string
	}{
		{"lib=anomalyd/out=event/shape=logpush/time=unixnano", DefaultFieldMap(), logpushEvent},
		{"lib=anomalyd/out=event/shape=logpush/time=rfc3339", DefaultFieldMap(), rfc3339},
		{"lib=anomalyd/out=event/shape=ecs", ECSFieldMap(), ecsEvent},
		{"lib=anomalyd/out=event/shape=nginx", NginxFieldMap(), nginxEvent},
	}
	for _, bm := range events {
		b.Run(bm.name, func(b *testing.B) {
			d := newDecoder(b, bm.fields)
			data := []byte(bm.input)
			var ev Event
			benchDecode(b, len(data), func() error { return d.Decode(data, &ev) })
		})
	}

	data := []byte(logpushEvent)
	fields := DefaultFieldMap()
	var keys []string
	for _, f := range fields.named() {
		keys = append(keys, *f.key)
	}
	b.Run("lib=fastjson/out=values", func(b *testing.B) {
		var p fastjson.Parser
		var vals [numFields][]byte
		benchDecode(b, len(data), func() error {
			v, err := p.ParseBytes(data)
			if err != nil {
				return err
			}
			o := v.GetObject()
			for i, k := range keys {
				if v := o.Get(k); v != nil && v.Type() == fastjson.TypeString {
					vals[i], _ = v.StringBytes()
				}
			}
			return nil
		})
	})
	b.Run("lib=encoding-json/out=struct", func(b *testing.B) {
		benchDecode(b, len(data), func() error {
			var ev logpushStruct
			return json.Unmarshal(data, &ev)
		})
	})
	b.Run("lib=encoding-json/out=map", func(b *testing.B) {
		benchDecode(b, len(data), func() error {
			var m map[string]any
			return json.Unmarshal(data, &m)
		})
	})
}

func benchDecode(b *testing.B, size int, decode func() error) {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		if err := decode(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkQueryShape(b *testing.B) {
	for _, uri := range []string{
		"/products/espresso-machine",
		"/products/espresso-machine?color=red&utm_source=newsletter&page=2",
		"/search?q=espresso&sort=price&page=2&utm_source=newsletter&utm_medium=email&utm_campaign=nov&fbclid=x&gclid=y",
	} {
		params := strings.Count(uri, "=")
		b.Run("params="+strconv.Itoa(params), func(b *testing.B) {
			data := []byte(uri)
			buf := make([]byte, 0, 128)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendQueryShape(buf[:0], data)
			}
		})
	}
}

// BenchmarkObserve measures Observer.Observe on the Logpush event of
// BenchmarkDecode, decoded: the visitor's keyed id, the bucket, the flags
// and traffic class, the query shape and the values' hashes.
func BenchmarkObserve(b *testing.B) {
	d := newDecoder(b, DefaultFieldMap())
	var ev Event
	if err := d.Decode([]byte(logpushEvent), &ev); err != nil {
		b.Fatal(err)
	}
	id, err := NewIdentity(IdentityIP, []byte("benchmark identity secret 012345"))
	if err != nil {
		b.Fatal(err)
	}
	ob := NewObserver(DefaultWindow(), id, DefaultClassifier())
	var o Observation
	b.ReportAllocs()
	for b.Loop() {
		if err := ob.Observe(&ev, &o); err != nil {
			b.Fatal(err)
		}
	}
}
