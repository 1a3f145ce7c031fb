package cputime

import (
	"testing"
	"time"
)

// Process is the CPU time the process has used so far, user and system,
// every goroutine's (the garbage collector's too); 0 where the platform
// does not say (not Unix), so a metric made of it reads 0 there. It fails
// tb when the system refuses to say.
func Process(tb testing.TB) time.Duration {
	d, err := used()
	if err != nil {
		tb.Fatalf("reading the process's CPU time: %v", err)
	}
	return d
}
