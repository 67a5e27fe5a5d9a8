package traffic

import (
	"bytes"
	"errors"
	"testing"
)

// TestJSONLWriterStreams checks that writing a Generator's requests one at
// a time gives exactly WriteJSONL's output for the whole slice.
func TestJSONLWriterStreams(t *testing.T) {
	cfg := smallConfig()
	cfg.Events = 2_000
	cfg.Bots = map[Scenario]int{Scraper: 2, LowAndSlow: 1}
	reqs, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, labels := range []bool{false, true} {
		var want, got bytes.Buffer
		if err := WriteJSONL(&want, reqs, labels); err != nil {
			t.Fatal(err)
		}
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		jw := NewJSONLWriter(&got, labels)
		for r, ok := g.Next(); ok; r, ok = g.Next() {
			if err := jw.Write(&r); err != nil {
				t.Fatal(err)
			}
		}
		if err := jw.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("labels=%v: streamed output differs from WriteJSONL's (%d vs %d bytes)", labels, got.Len(), want.Len())
		}
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestJSONLWriterError(t *testing.T) {
	boom := errors.New("disk full")
	jw := NewJSONLWriter(failWriter{boom}, true)
	r := Request{Site: "a.example", ClientIP: "192.0.2.1", Method: "GET", Path: "/", Status: 200, Label: HumanLabel}
	var err error
	for range 1 << 12 { // enough lines to fill the buffer
		if err = jw.Write(&r); err != nil {
			break
		}
	}
	if err == nil {
		err = jw.Flush()
	}
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if err := jw.Flush(); !errors.Is(err, boom) {
		t.Errorf("Flush after a failure: %v, want %v", err, boom)
	}
}
