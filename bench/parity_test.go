package bench

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/internal/dataset"
	"github.com/anomalyd/anomalyd/pkg/hbos"
)

// parityTol is how far a score may be from PyOD's: the bar. Only the
// order of floating-point additions may differ from numpy's.
const parityTol = 1e-9

// pyodROC is one row of pyod-hbos-fullfit-roc.csv.
type pyodROC struct {
	name         string
	bins10, auto float64
}

// TestPyODParity fits every ODDS dataset in both of PyOD's modes and checks
// every training score against PyOD's, then logs the ROC-AUC table next to
// PyOD's own.
func TestPyODParity(t *testing.T) {
	dir := dataset.RequireODDS(t)
	refs := readROCTable(t, filepath.Join(dir, "pyod-hbos-fullfit-roc.csv"))
	if len(refs) != 17 {
		t.Fatalf("pyod-hbos-fullfit-roc.csv lists %d datasets, want 17", len(refs))
	}
	modes := []struct {
		name string
		bins int
		ref  func(pyodROC) float64
	}{
		{"bins10", 10, func(r pyodROC) float64 { return r.bins10 }},
		{"auto", hbos.AutoBins, func(r pyodROC) float64 { return r.auto }},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-11s %7s %7s %7s %7s %10s\n", "dataset", "bins10", "pyod", "auto", "pyod", "max|diff|")
	for _, ref := range refs {
		ds, err := dataset.ReadFile(filepath.Join(dir, ref.name+".csv.gz"), "label")
		if err != nil {
			t.Fatal(err)
		}
		row := make([]float64, len(ds.Cols))
		var rocs [2]float64
		worst := 0.0
		for k, mode := range modes {
			cfg := hbos.DefaultConfig()
			cfg.Bins = mode.bins
			m, err := hbos.FitColumns(ds.Cols, cfg)
			if err != nil {
				t.Fatalf("%s/%s: fit: %v", ref.name, mode.name, err)
			}
			want := readScores(t, filepath.Join(dir, "pyod-scores", ref.name+"."+mode.name+".txt.gz"))
			if len(want) != ds.Rows() {
				t.Fatalf("%s/%s: %d reference scores for %d rows", ref.name, mode.name, len(want), ds.Rows())
			}
			scores := make([]float64, ds.Rows())
			bad := 0
			for i := range scores {
				s, err := m.Score(ds.Row(i, row))
				if err != nil {
					t.Fatalf("%s/%s: row %d: %v", ref.name, mode.name, i, err)
				}
				scores[i] = s
				d := math.Abs(s - want[i])
				worst = math.Max(worst, d)
				if d > parityTol {
					if bad < 3 {
						t.Errorf("%s/%s: row %d: score %.17g, PyOD %.17g (diff %.3g)", ref.name, mode.name, i, s, want[i], d)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s/%s: %d of %d scores differ from PyOD by more than %g", ref.name, mode.name, bad, len(scores), parityTol)
			}
			auc, err := hbos.ROCAUC(scores, ds.Labels)
			if err != nil {
				t.Fatalf("%s/%s: %v", ref.name, mode.name, err)
			}
			rocs[k] = auc
			if got, want := round4(auc), mode.ref(ref); got != want {
				t.Errorf("%s/%s: ROC-AUC %.4f, PyOD %.4f", ref.name, mode.name, got, want)
			}
		}
		fmt.Fprintf(&table, "%-11s %7.4f %7.4f %7.4f %7.4f %10.2g\n", ref.name, rocs[0], ref.bins10, rocs[1], ref.auto, worst)
	}
	t.Log(table.String())
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

func readROCTable(t testing.TB, path string) []pyodROC {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []pyodROC
	for _, r := range recs[1:] { // dataset,n,d,roc_bins10,roc_auto
		b10, err1 := strconv.ParseFloat(r[3], 64)
		auto, err2 := strconv.ParseFloat(r[4], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: bad row %v", path, r)
		}
		out = append(out, pyodROC{name: r[0], bins10: b10, auto: auto})
	}
	return out
}

func readScores(t testing.TB, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []float64
	sc := bufio.NewScanner(gz)
	for sc.Scan() {
		v, err := strconv.ParseFloat(strings.TrimSpace(sc.Text()), 64)
		if err != nil {
			t.Fatalf("%s: line %d: %v", path, len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}
