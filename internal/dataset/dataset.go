// Package dataset reads labelled numeric tables from CSV files, plain or
// gzip-compressed, for the offline tools and the evaluation harness.
package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Dataset is a numeric table: feature columns and an optional label column.
type Dataset struct {
	// Names are the feature column names, in file order, without the label.
	Names []string
	// Cols holds the features column-major: Cols[j][i] is feature j of row i.
	Cols [][]float64
	// Labels are the label column's values, or nil when the file has none.
	Labels []float64
}

// Rows is the number of samples.
func (d *Dataset) Rows() int {
	if len(d.Cols) == 0 {
		return 0
	}
	return len(d.Cols[0])
}

// Row copies sample i into dst (grown as needed) and returns it.
func (d *Dataset) Row(i int, dst []float64) []float64 {
	dst = dst[:0]
	for _, c := range d.Cols {
		dst = append(dst, c[i])
	}
	return dst
}

// ReadFile reads a CSV file with a header row; a name ending in ".gz" is
// gunzipped. The column named label (if present) becomes Labels; every other
// column must be numeric and finite. Errors name the file, line and column.
func ReadFile(path, label string) (*Dataset, error) {
	data, err := os.ReadFile(path) // one allocation of the file's size
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: reading gzip: %w", path, err)
		}
		defer gz.Close()
		if data, err = io.ReadAll(gz); err != nil {
			return nil, fmt.Errorf("%s: reading gzip: %w", path, err)
		}
	}
	d, err := parse(data, label)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// Read parses CSV from r; see ReadFile. A table without quotes, which is
// what numeric tools write, is parsed on every CPU at once; one with quotes
// goes through encoding/csv.
func Read(r io.Reader, label string) (*Dataset, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return parse(data, label)
}

// parse parses a whole CSV table.
func parse(data []byte, label string) (*Dataset, error) {
	if bytes.IndexByte(data, '"') < 0 {
		return readPlain(data, label)
	}
	return readCSV(bytes.NewReader(data), label)
}

// readCSV parses CSV from r with encoding/csv.
func readCSV(r io.Reader, label string) (*Dataset, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("no header row")
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	header = slices.Clone(header) // ReuseRecord would overwrite it

	d, labelCol, err := newDataset(header, label)
	if err != nil {
		return nil, err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// csv.ParseError already says "record on line N".
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		j := 0
		for i, field := range rec {
			v, err := parseValue(unsafe.Slice(unsafe.StringData(field), len(field)), line, header[i]) // read only
			if err != nil {
				return nil, err
			}
			if i == labelCol {
				d.Labels = append(d.Labels, v)
				continue
			}
			d.Cols[j] = append(d.Cols[j], v)
			j++
		}
	}
	return d, nil
}

// newDataset makes the dataset of a header: the feature names and the
// label's column, -1 if none.
func newDataset(header []string, label string) (*Dataset, int, error) {
	labelCol := -1
	d := &Dataset{}
	for i, name := range header {
		if name == label && labelCol < 0 {
			labelCol = i
			continue
		}
		d.Names = append(d.Names, name)
	}
	if len(d.Names) == 0 {
		return nil, 0, errors.New("no feature columns in header")
	}
	d.Cols = make([][]float64, len(d.Names))
	return d, labelCol, nil
}

// parseValue parses one field of a row, as readCSV and readPlain both do.
func parseValue(field []byte, line int, column string) (float64, error) {
	field = bytes.TrimSpace(field)
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(field), len(field)), 64)
	if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		err = errors.New("not a finite number")
	}
	if err != nil { // strconv's error holds the field, which is not a copy: quote it now
		return 0, fmt.Errorf("line %d, column %q: cannot use %q: %w", line, column, field, unwrapNum(err))
	}
	return v, nil
}

// readPlain parses CSV without quotes: lines of comma-separated fields,
// blank lines skipped, as encoding/csv reads them. The rows are split into
// one run of lines per CPU, parsed at once; the first error by line wins.
func readPlain(data []byte, label string) (*Dataset, error) {
	line := 1
	var header []string
	for len(data) > 0 && header == nil {
		l := nextLine(&data)
		if len(l) > 0 {
			header = strings.Split(string(l), ",")
			break
		}
		line++
	}
	if header == nil {
		return nil, errors.New("no header row")
	}
	d, labelCol, err := newDataset(header, label)
	if err != nil {
		return nil, err
	}
	parts := make([]plainPart, runtime.GOMAXPROCS(0))
	first := line + 1
	for i := range parts {
		n := len(data) / (len(parts) - i)
		if i < len(parts)-1 {
			if k := bytes.IndexByte(data[n:], '\n'); k >= 0 {
				n += k + 1
			} else {
				n = len(data)
			}
		}
		lines := bytes.Count(data[:n], []byte{'\n'})
		parts[i] = plainPart{data: data[:n], line: first, lines: lines}
		first += lines
		data = data[n:]
	}
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() { parts[i].parse(header, labelCol) })
	}
	wg.Wait()
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
	}
	if len(parts) == 1 {
		d.Cols, d.Labels = parts[0].cols, parts[0].labels
		return d, nil
	}
	rows := 0
	for _, p := range parts {
		rows += len(p.cols[0])
	}
	for j := range d.Cols {
		d.Cols[j] = make([]float64, 0, rows)
		for _, p := range parts {
			d.Cols[j] = append(d.Cols[j], p.cols[j]...)
		}
	}
	if labelCol >= 0 {
		d.Labels = make([]float64, 0, rows)
		for _, p := range parts {
			d.Labels = append(d.Labels, p.labels...)
		}
	}
	return d, nil
}

// plainPart is a run of lines of a table, from line on, and what parsing
// them gave.
type plainPart struct {
	data   []byte
	line   int
	lines  int // at most, as the rows of the part
	cols   [][]float64
	labels []float64
	err    error
}

func (p *plainPart) parse(header []string, labelCol int) {
	p.cols = make([][]float64, len(header))
	if labelCol >= 0 {
		p.cols = p.cols[:len(header)-1]
		p.labels = make([]float64, 0, p.lines+1)
	}
	for j := range p.cols {
		p.cols[j] = make([]float64, 0, p.lines+1) // a last line may lack its "\n"
	}
	for line := p.line; len(p.data) > 0; line++ {
		l := nextLine(&p.data)
		if len(l) == 0 {
			continue
		}
		if bytes.Count(l, []byte{','}) != len(header)-1 {
			p.err = fmt.Errorf("record on line %d: wrong number of fields", line)
			return
		}
		j := 0
		for i := range header {
			field := l
			if k := bytes.IndexByte(l, ','); k >= 0 {
				field, l = l[:k], l[k+1:]
			}
			v, err := parseValue(field, line, header[i])
			if err != nil {
				p.err = err
				return
			}
			if i == labelCol {
				p.labels = append(p.labels, v)
				continue
			}
			p.cols[j] = append(p.cols[j], v)
			j++
		}
	}
}

// nextLine cuts the next line off *data, without its "\n" or "\r\n".
func nextLine(data *[]byte) []byte {
	l, rest, _ := bytes.Cut(*data, []byte{'\n'})
	*data = rest
	return bytes.TrimSuffix(l, []byte{'\r'})
}

// unwrapNum drops strconv's repetition of the input from its error.
func unwrapNum(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}
