package natstest

import "syscall"

// procAttr has Linux kill a node if the test process dies without stopping
// it, so that no server outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
