package pipeline

import "syscall"

// sysProcAttr puts a service in its own process group, so that a Ctrl-C in
// the terminal reaches only the caller, which then stops the services in
// order; and makes the kernel kill it if the caller dies, so no service
// outlives a crashed demo or test binary. Pdeathsig fires when the starting
// OS thread exits; the Go runtime retires threads only for goroutines that
// exit locked to one, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
