package replay

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpen checks every way an input arrives: a file or stdin, plain or
// gzip (detected by content), and then sends it whole.
func TestOpen(t *testing.T) {
	plain := generated(t, 200, true)
	packed := gzipped(t, plain)
	tests := []struct {
		name, path string
		stdin      []byte
	}{
		{"file", writeTemp(t, "a.jsonl", plain), nil},
		{"gzip file", writeTemp(t, "a.jsonl.gz", packed), nil},
		{"gzip file without .gz", writeTemp(t, "a.log", packed), nil},
		{"stdin", "-", plain},
		{"gzip stdin", "-", packed},
		{"empty stdin", "-", []byte{}},
		{"one byte", "-", []byte("{")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := Open(tt.path, bytes.NewReader(tt.stdin))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			want := plain
			if tt.stdin != nil && len(tt.stdin) < 2 {
				want = tt.stdin
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, want %d", len(got), len(want))
			}
		})
	}
	t.Run("send gzip stdin", func(t *testing.T) {
		rc, err := Open("-", bytes.NewReader(packed))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		st, err := Send(t.Context(), DefaultConfig(), rc, &fakeWriter{})
		if err != nil || st.Events != 200 || st.Malformed != 0 {
			t.Errorf("%+v, %v; want 200 events", st, err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.jsonl")
	if _, err := Open(missing, nil); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	notGzip := writeTemp(t, "plain.jsonl.gz", []byte(`{"a":1}`+"\n"))
	if _, err := Open(notGzip, nil); !errors.Is(err, gzip.ErrHeader) || !strings.Contains(err.Error(), notGzip) {
		t.Errorf("a .gz that is not gzip: %v", err)
	}
	// A gzip stream cut short fails the Send, naming the line it reached.
	packed := gzipped(t, generated(t, 200, false))
	rc, err := Open(writeTemp(t, "cut.jsonl.gz", packed[:len(packed)/2]), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	s, _ := NewSender(DefaultConfig(), &fakeWriter{})
	if err := s.Send(t.Context(), "cut.jsonl.gz", rc); !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "reading cut.jsonl.gz:") {
		t.Errorf("truncated gzip: %v", err)
	}
}
