//go:build !linux

package natstest

import "syscall"

// procAttr: only Linux can kill a child when its parent dies.
func procAttr() *syscall.SysProcAttr { return nil }
