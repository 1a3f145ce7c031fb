//go:build !linux

package hubtest

import "syscall"

// mosquittoProcAttr: elsewhere the test's cleanup alone stops the broker.
func mosquittoProcAttr() *syscall.SysProcAttr { return nil }
