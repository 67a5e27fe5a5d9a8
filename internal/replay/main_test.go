package replay

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that writers, readers and brokers leave no goroutines
// behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
