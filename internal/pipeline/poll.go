package pipeline

import (
	"context"
	"fmt"
	"time"
)

// Poll calls check every interval until it reports done, for at most
// timeout. Waiting on the stack (ingest, drain, a restart) is always this
// loop; the error names what was awaited, check's last status and its last
// error.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, check func(context.Context) (done bool, status string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var status string
	var last error
	for {
		done, s, err := check(ctx)
		if err == nil && done {
			return nil
		}
		if s != "" {
			status = s
		}
		if err != nil {
			last = err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			msg := fmt.Sprintf("waiting for %s: gave up after %.0fs: %s", what, time.Since(start).Seconds(), status)
			if last != nil {
				msg += fmt.Sprintf(" (last error: %v)", last)
			}
			return fmt.Errorf("%s: %w", msg, ctx.Err())
		case <-t.C:
		}
	}
}
