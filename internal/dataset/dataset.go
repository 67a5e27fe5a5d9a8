// Package dataset reads labelled numeric tables from CSV files, plain or
// gzip-compressed, for the offline tools and the evaluation harness.
package dataset

import (
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
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
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: reading gzip: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	d, err := Read(r, label)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// Read parses CSV from r; see ReadFile.
func Read(r io.Reader, label string) (*Dataset, error) {
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
		return nil, errors.New("no feature columns in header")
	}
	d.Cols = make([][]float64, len(d.Names))
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
			v, err := strconv.ParseFloat(strings.TrimSpace(field), 64)
			if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
				err = errors.New("not a finite number")
			}
			if err != nil {
				return nil, fmt.Errorf("line %d, column %q: cannot use %q: %w", line, header[i], field, unwrapNum(err))
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

// unwrapNum drops strconv's repetition of the input from its error.
func unwrapNum(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}
