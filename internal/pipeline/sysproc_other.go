//go:build !linux

package pipeline

import "syscall"

// sysProcAttr has no parent-death signal or process group here; Close and
// Stop still stop the services.
func sysProcAttr() *syscall.SysProcAttr { return nil }
