package testenv_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the helpers and the clients used in the smoke tests
// leave no goroutines behind once everything is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
