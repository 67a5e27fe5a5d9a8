package hbos

import (
	"errors"
	"fmt"
	"sort"

	"gonum.org/v1/gonum/integrate"
	"gonum.org/v1/gonum/stat"
)

// ROCAUC is the area under the ROC curve of scores against binary labels
// (non-zero = outlier), with tied scores handled as scikit-learn's
// roc_auc_score does. It needs at least one sample of each class.
func ROCAUC(scores []float64, labels []float64) (float64, error) {
	if len(scores) != len(labels) {
		return 0, fmt.Errorf("roc-auc: %d scores but %d labels", len(scores), len(labels))
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	y := make([]float64, len(idx))
	classes := make([]bool, len(idx))
	pos := 0
	for k, i := range idx {
		y[k] = scores[i]
		classes[k] = labels[i] != 0
		if classes[k] {
			pos++
		}
	}
	if pos == 0 || pos == len(y) {
		return 0, errors.New("roc-auc: labels hold only one class")
	}
	tpr, fpr, _ := stat.ROC(nil, y, classes, nil)
	return integrate.Trapezoidal(fpr, tpr), nil
}
