//go:build !linux

package testenv

import "syscall"

// sysProcAttr has no parent-death signal outside Linux; Close and Stop still
// kill the servers.
func sysProcAttr() *syscall.SysProcAttr { return nil }
