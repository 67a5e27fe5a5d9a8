// Command hbos fits a Histogram-Based Outlier Score model on a CSV file and
// prints one outlier score per row, for operators and data scientists who
// want to try features offline before the detector scores them live.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/anomalyd/anomalyd/internal/dataset"
	"github.com/anomalyd/anomalyd/pkg/hbos"
)

const usage = `Usage: hbos -train TRAIN.csv[.gz] [-score TEST.csv[.gz]] [flags]

Fits HBOS (PyOD's semantics) on TRAIN and writes one outlier score per row of
the scored file (TEST, or TRAIN without -score) to stdout, one per line, in
full float64 precision. Higher scores are more anomalous.

CSV files need a header row; a name ending in .gz is gunzipped. Every column
but the label column must be numeric. TEST must have TRAIN's feature columns.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg := hbos.DefaultConfig()
	fs := flag.NewFlagSet("hbos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var (
		train = fs.String("train", "", "CSV file to fit the model on (required)")
		score = fs.String("score", "", "CSV file to score (default: the training file)")
		label = fs.String("label", "label", "name of the label column, excluded from the features (1 = outlier, 0 = inlier); ignored when absent")
		roc   = fs.Bool("roc", false, "print the ROC-AUC of the scores against the label column to stderr")
	)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *train == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "hbos: -train is required and there are no positional arguments")
		fs.Usage()
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "hbos: %v\n", err)
		return 2
	}
	if err := fitAndScore(cfg, *train, *score, *label, *roc, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "hbos: %v\n", err)
		return 1
	}
	return 0
}

func fitAndScore(cfg hbos.Config, trainPath, scorePath, label string, roc bool, stdout, stderr io.Writer) error {
	train, err := dataset.ReadFile(trainPath, label)
	if err != nil {
		return err
	}
	model, err := hbos.FitColumns(train.Cols, cfg)
	if err != nil {
		return fmt.Errorf("fitting %s: %w", trainPath, err)
	}
	test, testPath := train, trainPath
	if scorePath != "" {
		if test, err = dataset.ReadFile(scorePath, label); err != nil {
			return err
		}
		testPath = scorePath
		if !slices.Equal(test.Names, train.Names) {
			return fmt.Errorf("%s has feature columns %v, %s has %v", scorePath, test.Names, trainPath, train.Names)
		}
	}
	if roc && test.Labels == nil {
		return fmt.Errorf("-roc: %s has no %q column", testPath, label)
	}
	out := bufio.NewWriter(stdout)
	scores := make([]float64, test.Rows())
	row := make([]float64, 0, len(test.Cols))
	buf := make([]byte, 0, 32)
	for i := range scores {
		s, err := model.Score(test.Row(i, row))
		if err != nil {
			return fmt.Errorf("%s: row %d: %w", testPath, i+1, err)
		}
		scores[i] = s
		buf = strconv.AppendFloat(buf[:0], s, 'g', -1, 64)
		buf = append(buf, '\n')
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if roc {
		auc, err := hbos.ROCAUC(scores, test.Labels)
		if err != nil {
			return fmt.Errorf("%s: %w", testPath, err)
		}
		fmt.Fprintf(stderr, "ROC-AUC %.4f (threshold %.6g, %d rows)\n", auc, model.Threshold(), len(scores))
	}
	return nil
}
