//go:build unix

package devices

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time the process has used, user and system, every
// goroutine's (the garbage collector's too): unlike ns/op, what neighbours
// on a shared machine change little.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
