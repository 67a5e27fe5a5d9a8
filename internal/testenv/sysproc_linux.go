package testenv

import "syscall"

// sysProcAttr makes the kernel kill a server when the process that started
// it dies, so a crashed or killed test binary leaves no servers behind.
// Pdeathsig fires when the starting OS thread exits; the Go runtime does not
// retire threads unless a goroutine exits while locked to one, which this
// package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
