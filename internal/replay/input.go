package replay

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// gzipMagic starts every gzip stream. JSON text never starts with it, so
// inputs are gunzipped by content: a piped .gz file works too.
var gzipMagic = []byte{0x1f, 0x8b}

// Open opens an input of a Sender: the file at path, or stdin for "-",
// gunzipped when it is gzip data. A name ending in .gz must be gzip data.
// Close closes the file (not stdin).
func Open(path string, stdin io.Reader) (io.ReadCloser, error) {
	var (
		r      io.Reader = stdin
		closer io.Closer = io.NopCloser(nil)
	)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err // names the path
		}
		r, closer = f, f
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(gzipMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		closer.Close()
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if string(head) != string(gzipMagic) {
		if strings.HasSuffix(path, ".gz") {
			closer.Close()
			return nil, fmt.Errorf("reading gzip %s: %w", path, gzip.ErrHeader)
		}
		return readCloser{br, closer}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("reading gzip %s: %w", path, err)
	}
	return readCloser{zr, closer}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
