package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The processes a run watches. A single target is one PID (-pid 1234); a
// deployment of several processes (hub replicas and the nodes of the broker
// cluster behind them) is a list, -pid 1234,1235 or, with labels,
// -procs hub1=1234,hub2=1235,nats0=1240. The run reads every one's CPU time
// and resident memory; the target's figures (target_cpu_s, rss_*,
// mem_per_conn_bytes) are their sums, so that the CPU "others" used
// (foreignCores) leaves all of them out.

// maxProcs bounds how many processes one run watches (each is read from
// /proc once a second).
const maxProcs = 64

// watchedProc is one process of the target: a label and its PID.
type watchedProc struct {
	Label string
	PID   string
}

// parseProcs reads -pid (PIDs, comma-separated; each labelled by its PID)
// and -procs (LABEL=PID, comma-separated), in that order. Labels are unique
// and PIDs positive integers.
func parseProcs(pids, procs string) ([]watchedProc, error) {
	var out []watchedProc
	for p := range strings.SplitSeq(pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, watchedProc{Label: p, PID: p})
		}
	}
	for p := range strings.SplitSeq(procs, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		label, pid, ok := strings.Cut(p, "=")
		label, pid = strings.TrimSpace(label), strings.TrimSpace(pid)
		if !ok || label == "" {
			return nil, fmt.Errorf("-procs %q: want LABEL=PID", p)
		}
		out = append(out, watchedProc{Label: label, PID: pid})
	}
	if len(out) > maxProcs {
		return nil, fmt.Errorf("%d processes to watch: at most %d", len(out), maxProcs)
	}
	seen := make(map[string]bool, len(out))
	for _, p := range out {
		if n, err := strconv.Atoi(p.PID); err != nil || n <= 0 {
			return nil, fmt.Errorf("process %q: PID %q is not a positive integer", p.Label, p.PID)
		}
		if seen[p.Label] {
			return nil, fmt.Errorf("process label %q given twice", p.Label)
		}
		seen[p.Label] = true
	}
	return out, nil
}

// procResult is what a run measured of one watched process.
type procResult struct {
	Label      string  `json:"label"`
	PID        string  `json:"pid"`
	CPUSeconds float64 `json:"cpu_s"` // utime+stime over the measured window
	// Cores is CPUSeconds per second of the window: 1 is one core.
	Cores float64 `json:"cores"`
	// USPerDelivery is CPUSeconds per delivered message, all subscribers,
	// in microseconds (0 when nothing was delivered).
	USPerDelivery float64 `json:"us_per_delivery"`
	RSSNoneKB     int64   `json:"rss_none_kb"` // before the subscribers connected
	RSSIdleKB     int64   `json:"rss_idle_kb"` // with them connected, nothing published
	RSSPeakKB     int64   `json:"rss_peak_kb"` // highest in the window (sampled once a second)
}

// procSet is the watched processes of one run and what was read of them.
type procSet struct {
	procs []watchedProc
	res   []procResult
	cpu0  []float64 // CPU seconds at the start of the window
}

func newProcSet(procs []watchedProc) *procSet {
	s := &procSet{procs: procs, res: make([]procResult, len(procs)), cpu0: make([]float64, len(procs))}
	for i, p := range procs {
		s.res[i] = procResult{Label: p.Label, PID: p.PID}
	}
	return s
}

// rss reads every process's resident memory and returns the sum; set
// stores each reading where it belongs. A process that is gone is an error.
func (s *procSet) rss(set func(r *procResult, kb int64)) (int64, error) {
	var sum int64
	for i, p := range s.procs {
		kb, err := rssKB(p.PID)
		if err != nil {
			return 0, fmt.Errorf("process %s: %w", p.Label, err)
		}
		set(&s.res[i], kb)
		sum += kb
	}
	return sum, nil
}

// startWindow reads every process's CPU time at the start of the window and
// returns the sum.
func (s *procSet) startWindow() (float64, error) {
	var sum float64
	for i, p := range s.procs {
		c, err := cpuSeconds(p.PID)
		if err != nil {
			return 0, fmt.Errorf("process %s: %w", p.Label, err)
		}
		s.cpu0[i] = c
		sum += c
	}
	return sum, nil
}

// endWindow reads every process's CPU time at the end of a window of secs
// seconds, records each one's share, and returns the sum of the readings.
func (s *procSet) endWindow(secs float64) (float64, error) {
	var sum float64
	var errs []error
	for i, p := range s.procs {
		c, err := cpuSeconds(p.PID)
		if err != nil {
			errs = append(errs, fmt.Errorf("process %s: %w", p.Label, err))
			continue
		}
		sum += c
		s.res[i].CPUSeconds = round(c-s.cpu0[i], 3)
		if secs > 0 {
			s.res[i].Cores = round((c-s.cpu0[i])/secs, 3)
		}
	}
	return sum, errors.Join(errs...)
}

// perDelivery fills each process's CPU per delivered message.
func (s *procSet) perDelivery(delivered uint64) {
	for i := range s.res {
		if delivered > 0 {
			s.res[i].USPerDelivery = round(s.res[i].CPUSeconds*1e6/float64(delivered), 3)
		}
	}
}
