package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/internal/dataset"
)

func runHBOS(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	data := []byte(content)
	if strings.HasSuffix(name, ".gz") {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScoresEveryRow(t *testing.T) {
	train := writeFile(t, "train.csv.gz", "a,b,label\n1,2,0\n2,3,0\n3,4,0\n40,50,1\n")
	code, out, errOut := runHBOS(t, "-train", train, "-roc")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d score lines, want 4:\n%s", len(lines), out)
	}
	for i, l := range lines {
		if _, err := strconv.ParseFloat(l, 64); err != nil {
			t.Errorf("line %d: %q is not a float", i+1, l)
		}
	}
	if !strings.Contains(errOut, "ROC-AUC 1.0000") {
		t.Errorf("stderr = %q, want ROC-AUC 1.0000", errOut)
	}
}

func TestScoreFileAndFullPrecision(t *testing.T) {
	// The repository's example: fit on humans, score humans and bots.
	code, out, errOut := runHBOS(t, "-train", "../../testdata/visitors-train.csv", "-score", "../../testdata/visitors-test.csv", "-roc")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 530 {
		t.Fatalf("%d scores, want 530 (test rows)", len(lines))
	}
	for _, l := range lines {
		v, _ := strconv.ParseFloat(l, 64)
		if strconv.FormatFloat(v, 'g', -1, 64) != l {
			t.Fatalf("score %q is not in shortest full precision", l)
		}
	}
	if !strings.Contains(errOut, "ROC-AUC 0.9") {
		t.Errorf("stderr = %q, want a ROC-AUC above 0.9 on the example", errOut)
	}
}

func TestErrors(t *testing.T) {
	good := writeFile(t, "good.csv", "a,b,label\n1,2,0\n2,3,1\n")
	notGzip := filepath.Join(t.TempDir(), "plain.csv.gz")
	if err := os.WriteFile(notGzip, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no train", nil, 2, "-train is required"},
		{"bad bins", []string{"-train", good, "-n-bins", "0"}, 2, `or "auto"`},
		{"bad alpha", []string{"-train", good, "-alpha", "-1"}, 2, "alpha"},
		{"bad contamination", []string{"-train", good, "-contamination", "0.9"}, 2, "contamination"},
		{"missing file", []string{"-train", filepath.Join(t.TempDir(), "nope.csv")}, 1, "nope.csv"},
		{"not a number", []string{"-train", writeFile(t, "bad.csv", "a,b\n1,2\n3,x\n")}, 1, `bad.csv: line 3, column "b": cannot use "x"`},
		{"NaN", []string{"-train", writeFile(t, "nan.csv", "a,b\n1,NaN\n")}, 1, `line 2, column "b"`},
		{"short row", []string{"-train", writeFile(t, "short.csv", "a,b\n1,2\n3\n")}, 1, "short.csv: record on line 3: wrong number of fields"},
		{"bad gzip", []string{"-train", notGzip}, 1, "plain.csv.gz: reading gzip"},
		{"header only", []string{"-train", writeFile(t, "empty.csv", "a,b\n")}, 1, "empty training data"},
		{"roc without labels", []string{"-train", writeFile(t, "nolabel.csv", "a,b\n1,2\n2,3\n"), "-roc"}, 1, `no "label" column`},
		{"columns differ", []string{"-train", good, "-score", writeFile(t, "other.csv", "a,c,label\n1,2,0\n")}, 1, "feature columns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runHBOS(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	code, _, errOut := runHBOS(t, "-h")
	if code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, f := range []string{"-train", "-score", "-n-bins", "-alpha", "-tol", "-dynamic", "-label", "-contamination", "-roc"} {
		if !strings.Contains(errOut, f) {
			t.Errorf("-h does not mention %s", f)
		}
	}
}

// TestPyODFullFitROC is the acceptance check: hbos -train <dataset>
// -roc prints PyOD's full-fit ROC-AUC to four decimals, for every dataset.
func TestPyODFullFitROC(t *testing.T) {
	dir := dataset.RequireODDS(t)
	data, err := os.ReadFile(filepath.Join(dir, "pyod-hbos-fullfit-roc.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		f := strings.Split(strings.TrimSpace(line), ",") // dataset,n,d,roc_bins10,roc_auto
		for _, mode := range []struct{ bins, want string }{{"10", f[3]}, {"auto", f[4]}} {
			t.Run(f[0]+"/"+mode.bins, func(t *testing.T) {
				code, _, errOut := runHBOS(t, "-train", filepath.Join(dir, f[0]+".csv.gz"), "-n-bins", mode.bins, "-roc")
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				if !strings.HasPrefix(errOut, "ROC-AUC "+mode.want+" ") {
					t.Errorf("stderr %q, want ROC-AUC %s", errOut, mode.want)
				}
			})
		}
	}
}
