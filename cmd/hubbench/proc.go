package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
)

// What the kernel says about a process: CPU time and resident memory, read
// from /proc.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux the project runs on.
const clockTicks = 100

// cpuSeconds is utime+stime of process pid ("self" for this one), every
// thread included.
func cpuSeconds(pid string) (float64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads fields 14 and 15 (utime, stime) of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time: malformed stat %.80q", stat)
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time: stat has %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu time: utime %q stime %q", f[11], f[12])
	}
	return float64(u+s) / clockTicks, nil
}

// rssKB is VmRSS of process pid in KiB.
func rssKB(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	return parseVmRSS(b)
}

func parseVmRSS(status []byte) (int64, error) {
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) >= 1 {
				return strconv.ParseInt(string(f[0]), 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS line")
}

// gctraceLine matches the heap sizes of a GODEBUG=gctrace=1 line:
// "... 4->5->2 MB, ..." (heap at GC start, at GC end, live after it).
var gctraceLine = regexp.MustCompile(`gc \d+ @[^\n]*? (\d+)->(\d+)->(\d+) MB`)

// lastLiveHeapMB is the live heap after the last GC that a Go process wrote
// to its gctrace file, and how many GCs the file shows; -1 when unknown.
func lastLiveHeapMB(path string) (liveMB int64, gcs int) {
	if path == "" {
		return -1, 0
	}
	f, err := os.Open(path)
	if err != nil {
		return -1, 0
	}
	defer f.Close()
	const tail = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		_, _ = f.Seek(fi.Size()-tail, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, tail))
	m := gctraceLine.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return -1, 0
	}
	v, err := strconv.ParseInt(string(m[len(m)-1][3]), 10, 64)
	if err != nil {
		return -1, 0
	}
	return v, len(m)
}

// cpuTimes are the jiffies of one CPU line of /proc/stat.
type cpuTimes struct {
	Busy, SoftIRQ, Steal, Total uint64
}

// readCPUTimes reads the per-CPU lines of /proc/stat ("cpu0", "cpu1", ...).
func readCPUTimes() ([]cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("cpu times: %w", err)
	}
	return parseProcStat(b), nil
}

func parseProcStat(b []byte) []cpuTimes {
	var out []cpuTimes
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) < 9 || !bytes.HasPrefix(f[0], []byte("cpu")) || len(f[0]) == 3 {
			continue // not a per-CPU line (the first, "cpu", is the sum)
		}
		// user nice system idle iowait irq softirq steal [guest guest_nice]
		var v [8]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(string(f[i+1]), 10, 64)
		}
		t := cpuTimes{SoftIRQ: v[6], Steal: v[7]}
		for i, x := range v {
			t.Total += x
			if i != 3 && i != 4 { // idle, iowait
				t.Busy += x
			}
		}
		out = append(out, t)
	}
	return out
}

// cpuShares turns two readings into per-CPU busy, softirq and steal
// fractions of the time between them.
func cpuShares(a, b []cpuTimes) (busy, softirq, steal []float64) {
	for i := range min(len(a), len(b)) {
		total := float64(b[i].Total - a[i].Total)
		if total <= 0 {
			total = 1
		}
		busy = append(busy, round(float64(b[i].Busy-a[i].Busy)/total, 3))
		softirq = append(softirq, round(float64(b[i].SoftIRQ-a[i].SoftIRQ)/total, 3))
		steal = append(steal, round(float64(b[i].Steal-a[i].Steal)/total, 3))
	}
	return busy, softirq, steal
}

// foreignCores estimates the CPU that processes other than the target and
// the load generator used over a window of secs seconds: every CPU's busy
// time (softirq and steal left out) minus what the two used. On a shared
// machine it tells a clean run from one that competed with someone's build.
func foreignCores(a, b []cpuTimes, secs, targetCores, selfCores float64) float64 {
	if secs <= 0 {
		return 0
	}
	var busy uint64
	for i := range min(len(a), len(b)) {
		busy += (b[i].Busy - a[i].Busy) - (b[i].SoftIRQ - a[i].SoftIRQ) - (b[i].Steal - a[i].Steal)
	}
	return max(0, round(float64(busy)/clockTicks/secs-targetCores-selfCores, 3))
}
