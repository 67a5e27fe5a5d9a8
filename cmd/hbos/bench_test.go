package main

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/anomalyd/anomalyd/internal/dataset"
	"github.com/anomalyd/anomalyd/pkg/hbos"
)

// table is a CSV of rows x cols standard normal values as numpy.savetxt
// writes them (%.18e), with a header: the table the tool is compared with
// numpy.loadtxt and PyOD on (see the README).
func table(rows, cols int) []byte {
	var b bytes.Buffer
	for j := range cols {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteString("f" + strconv.Itoa(j))
	}
	b.WriteByte('\n')
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 32)
	for range rows {
		for j := range cols {
			if j > 0 {
				b.WriteByte(',')
			}
			b.Write(strconv.AppendFloat(buf[:0], r.NormFloat64(), 'e', 18, 64))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkTool measures hbos -train on a 200k x 16 table, whole and by
// stage: reading the CSV, fitting, scoring every row, writing the scores.
func BenchmarkTool(b *testing.B) {
	const rows, cols = 200_000, 16
	data := table(rows, cols)
	file := filepath.Join(b.TempDir(), "train.csv")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		b.Fatal(err)
	}
	perRow := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	}
	d, err := dataset.Read(bytes.NewReader(data), "label")
	if err != nil {
		b.Fatal(err)
	}
	cfg := hbos.DefaultConfig()
	model, err := hbos.FitColumns(d.Cols, cfg)
	if err != nil {
		b.Fatal(err)
	}
	scores := make([]float64, rows)
	b.Run("stage=all", func(b *testing.B) {
		for b.Loop() {
			if code := run([]string{"-train", file}, io.Discard, io.Discard); code != 0 {
				b.Fatalf("exit code %d", code)
			}
		}
		perRow(b)
	})
	b.Run("stage=read", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := dataset.ReadFile(file, "label"); err != nil {
				b.Fatal(err)
			}
		}
		perRow(b)
	})
	b.Run("stage=fit", func(b *testing.B) {
		for b.Loop() {
			if _, err := hbos.FitColumns(d.Cols, cfg); err != nil {
				b.Fatal(err)
			}
		}
		perRow(b)
	})
	b.Run("stage=score", func(b *testing.B) {
		row := make([]float64, 0, cols)
		for b.Loop() {
			for i := range scores {
				scores[i], _ = model.Score(d.Row(i, row))
			}
		}
		perRow(b)
	})
	b.Run("stage=write", func(b *testing.B) {
		buf := make([]byte, 0, 32)
		for b.Loop() {
			w := bufio.NewWriter(io.Discard)
			for _, s := range scores {
				buf = strconv.AppendFloat(buf[:0], s, 'g', -1, 64)
				buf = append(buf, '\n')
				w.Write(buf)
			}
			w.Flush()
		}
		perRow(b)
	})
}
