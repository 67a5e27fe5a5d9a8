package dataset

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name      string
		csv       string
		wantNames []string
		wantCols  [][]float64
		wantLabel []float64
	}{
		{"label last", "a,b,label\n1,2,0\n3,4,1\n", []string{"a", "b"}, [][]float64{{1, 3}, {2, 4}}, []float64{0, 1}},
		{"label first", "label,a\n1,5\n0,6\n", []string{"a"}, [][]float64{{5, 6}}, []float64{1, 0}},
		{"no label", "a,b\n1,2\n", []string{"a", "b"}, [][]float64{{1}, {2}}, nil},
		{"spaces and exponents", "a\n 1e3 \n-2.5\n", []string{"a"}, [][]float64{{1000, -2.5}}, nil},
		{"header only", "a,b\n", []string{"a", "b"}, [][]float64{nil, nil}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Read(strings.NewReader(tc.csv), "label")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Names, tc.wantNames) || !slices.Equal(d.Labels, tc.wantLabel) {
				t.Errorf("names %v labels %v, want %v %v", d.Names, d.Labels, tc.wantNames, tc.wantLabel)
			}
			for j := range tc.wantCols {
				if !slices.Equal(d.Cols[j], tc.wantCols[j]) {
					t.Errorf("column %d = %v, want %v", j, d.Cols[j], tc.wantCols[j])
				}
			}
			if d.Rows() != len(tc.wantCols[0]) {
				t.Errorf("Rows() = %d", d.Rows())
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct{ name, csv, want string }{
		{"empty", "", "no header row"},
		{"only label", "label\n1\n", "no feature columns"},
		{"bad number", "a,b\n1,2\n1,zz\n", `line 3, column "b": cannot use "zz": invalid syntax`},
		{"infinite", "a\n+Inf\n", `line 2, column "a": cannot use "+Inf": not a finite number`},
		{"bad label", "a,label\n1,yes\n", `line 2, column "label"`},
		{"ragged", "a,b\n1,2\n3\n", "record on line 3: wrong number of fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tc.csv), "label")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestPlainMatchesCSV checks the parallel reader of tables without quotes
// against encoding/csv on the same text: values, blank lines, CRLF, and
// the first error by line when several parts of the table have one.
func TestPlainMatchesCSV(t *testing.T) {
	var b strings.Builder
	b.WriteString("\r\nx,label,y\r\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "%d.5, %d ,-%de-3\n", i, i%2, i)
		if i%97 == 0 {
			b.WriteString("\n")
		}
	}
	text := b.String()
	plain, err := readPlain([]byte(text), "label")
	if err != nil {
		t.Fatal(err)
	}
	viaCSV, err := readCSV(strings.NewReader(text), "label")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain, viaCSV) || plain.Rows() != 1000 {
		t.Fatalf("plain reader differs from encoding/csv (%d rows)", plain.Rows())
	}
	lines := strings.SplitAfter(text, "\n")
	lines[700] = "1,0,oops\n"
	lines[900] = "1,0\n"
	bad := strings.Join(lines, "")
	_, perr := readPlain([]byte(bad), "label")
	_, cerr := readCSV(strings.NewReader(bad), "label")
	if perr == nil || cerr == nil || perr.Error() != cerr.Error() {
		t.Errorf("plain: %v\ncsv:   %v", perr, cerr)
	}
}
