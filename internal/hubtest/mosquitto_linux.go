package hubtest

import "syscall"

// mosquittoProcAttr has Linux kill the broker if the test process dies
// without stopping it, so that no broker outlives its test.
func mosquittoProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
