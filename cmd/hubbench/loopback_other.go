//go:build !linux

package main

import "net"

// spreadSource leaves d as it is: spreading connections over source
// addresses (see loopback_linux.go) needs Linux's loopback, where all of
// 127.0.0.0/8 is local.
func spreadSource(*net.Dialer) {}
