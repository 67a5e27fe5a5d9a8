package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// ODDSEnv names an environment variable that overrides where the ODDS
// datasets are; by default they sit in ../shared/odds beside the repository.
const ODDSEnv = "ANOMALYD_ODDS_DIR"

// ODDSDir finds the ODDS reference datasets: $ANOMALYD_ODDS_DIR, else
// shared/odds next to the directory holding this module's go.mod.
func ODDSDir() (string, error) {
	if dir := os.Getenv(ODDSEnv); dir != "" {
		return checkDir(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return checkDir(filepath.Join(dir, "..", "shared", "odds"))
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

func checkDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "pyod-hbos-fullfit-roc.csv")); err != nil {
		return "", fmt.Errorf("ODDS datasets not found in %s (set %s): %w", dir, ODDSEnv, err)
	}
	return dir, nil
}

// RequireODDS returns the ODDS directory for a test. Where it is missing the
// test fails under CI (CI=true), where the data must be, and skips elsewhere.
func RequireODDS(tb testing.TB) string {
	tb.Helper()
	dir, err := ODDSDir()
	if err == nil {
		return dir
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true but %v", err)
	}
	tb.Skipf("skipping: %v", err)
	return ""
}
