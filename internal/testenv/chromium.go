package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// ChromiumDOM opens url in a headless Chromium (Debian's package, which
// make deps installs) and returns the DOM it rendered. Without chromium
// the test is skipped, but under CI, where make deps ran, it fails.
func ChromiumDOM(tb testing.TB, url string) string {
	tb.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("chromium is not installed: make deps installs it")
		}
		tb.Skip("chromium is not installed (make deps installs it)")
	}
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	// --no-sandbox: tests run as root in CI, where Chromium's sandbox
	// refuses to start.
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+tb.TempDir(), "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("chromium --dump-dom: %v", err)
	}
	return string(out)
}
