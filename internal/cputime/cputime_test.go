package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestProcessCountsWork: spinning for a while moves the process's CPU
// time on, by about as much (on Unix; elsewhere it reads 0).
func TestProcessCountsWork(t *testing.T) {
	before := Process(t)
	spin := time.Now()
	for x := 0; time.Since(spin) < 50*time.Millisecond; x++ {
		_ = x * x
	}
	after := Process(t)
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		if after != 0 || before != 0 {
			t.Fatalf("read %v and %v where nothing is measured, want 0", before, after)
		}
		return
	}
	if got := after - before; got < 10*time.Millisecond {
		t.Fatalf("50 ms of spinning moved the CPU time by %v, want 10 ms or more", got)
	}
}
