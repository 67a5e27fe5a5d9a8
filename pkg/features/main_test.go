package features

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that stores, clients and test servers leave no goroutines
// behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
