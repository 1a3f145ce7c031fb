//go:build unix

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A hub started with a low soft limit on open files (1,024 is a common
// default) raises it to the hard limit, and says once how many connections
// that allows.
func TestHubRaisesItsOpenFileLimit(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max <= 256 {
		t.Skipf("the hard limit on open files is %d: nothing to raise", rl.Max)
	}
	bin := buildHub(t)
	cmd, out, _ := startProcess(t, "/bin/sh", "-c", `ulimit -S -n 256 && exec "$0" "$@"`, bin,
		"--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", "")

	want := fmt.Sprintf(`msg="open files" limit=%d hard_limit=%d connections=%d`, rl.Max, rl.Max, rl.Max-filesKept)
	if n := strings.Count(out.String(), `msg="open files"`); n != 1 || !strings.Contains(out.String(), want) {
		t.Fatalf("%d open files lines, want one with %q:\n%s", n, want, out)
	}
	if soft := openFilesSoftLimit(t, cmd.Process.Pid); soft != rl.Max {
		t.Fatalf("the hub's soft limit on open files is %d, want the hard limit %d", soft, rl.Max)
	}
}

// openFilesSoftLimit reads process pid's soft limit on open files from /proc.
func openFilesSoftLimit(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				soft, err := strconv.ParseUint(fields[0], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return soft
			}
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits:\n%s", pid, b)
	return 0
}
