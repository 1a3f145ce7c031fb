package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// What bench/run.sh asks of hubbench between runs: describe the machine,
// record a skipped cell, and tell whether a series is past saturation.

func cmdMeta(args []string) error {
	fs := flag.NewFlagSet("meta", flag.ContinueOnError)
	out := fs.String("out", "-", "results file to append to")
	m := meta{Kind: "meta", Date: time.Now().UTC().Format(time.RFC3339), Go: runtime.Version()}
	fs.StringVar(&m.Mosquitto, "mosquitto", "", "Mosquitto's version")
	fs.StringVar(&m.Command, "command", "", "the command that regenerates the results")
	fs.StringVar(&m.Mode, "mode", "full", "quick or full")
	fs.StringVar(&m.Notes, "notes", "", "free text: settings worth knowing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m.Nproc, m.CPU = cpuInfo()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return appendJSONLine(*out, m)
}

// cpuInfo counts the processors in /proc/cpuinfo and names the first one.
func cpuInfo() (n int, model string) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU(), "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return n, model
}

func cmdSkip(args []string) error {
	fs := flag.NewFlagSet("skip", flag.ContinueOnError)
	out := fs.String("out", "-", "results file to append to")
	sk := skipped{Kind: "skip"}
	fs.StringVar(&sk.Variant, "variant", "pinned", "")
	fs.StringVar(&sk.Target, "target", "", "")
	fs.StringVar(&sk.Transport, "transport", "", "")
	fs.IntVar(&sk.Subs, "subs", 0, "")
	fs.Float64Var(&sk.Offered, "offered", 0, "deliveries/s")
	fs.StringVar(&sk.Reason, "reason", "", "why it was not run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return appendJSONLine(*out, sk)
}

// errNotSaturated is cmdSaturated's "no": run.sh reads the exit status.
var errNotSaturated = errors.New("not saturated")

// cmdSaturated answers whether a cell's repeats all fell far short (less
// than -ratio delivered, or a p99 over -p99), so that higher loads of the
// same series need not be run.
func cmdSaturated(args []string) error {
	fs := flag.NewFlagSet("saturated", flag.ContinueOnError)
	in := fs.String("in", "", "results file")
	var k cellKey
	fs.StringVar(&k.Variant, "variant", "pinned", "")
	fs.StringVar(&k.Target, "target", "", "")
	fs.StringVar(&k.Transport, "transport", "", "")
	fs.IntVar(&k.Subs, "subs", 0, "")
	fs.Float64Var(&k.Offered, "offered", 0, "deliveries/s")
	minRatio := fs.Float64("ratio", 0.9, "a run delivering less than this is saturated")
	maxP99 := fs.Duration("p99", time.Second, "a run with a p99 above this is saturated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	rs, err := readResults(f)
	if err != nil {
		return err
	}
	// The cell as the report sees it: its latest session's runs only, so
	// that a target measured again (BENCH_APPEND=1) is judged on the new runs.
	c := findCell(groupCells(slices.DeleteFunc(rs.Runs, func(r result) bool { return r.Idle })), k)
	if c == nil || len(c.Runs) == 0 {
		return fmt.Errorf("%w: no run of that cell", errNotSaturated)
	}
	for _, r := range c.Runs {
		if ratioOf(r) >= *minRatio && p99Of(r) <= float64(maxP99.Microseconds()) {
			return errNotSaturated
		}
	}
	return nil
}

// cmdQuiet waits, at most -timeout, until the machine's CPUs have been less
// busy than -max cores (softirq and steal left out) for -for, sampling every
// half second. It returns nil either way: a run on a busy machine is still a
// run, and it records how busy the machine was.
func cmdQuiet(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("quiet", flag.ContinueOnError)
	maxCores := fs.Float64("max", 0.2, "CPU (cores) that others may use")
	hold := fs.Duration("for", 2*time.Second, "how long it must stay that quiet")
	timeout := fs.Duration("timeout", time.Minute, "give up waiting after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	began := time.Now()
	quietSince := time.Now()
	prev, err := readCPUTimes()
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		sleepUntil(ctx, time.Now().Add(500*time.Millisecond))
		cur, err := readCPUTimes()
		if err != nil {
			return err
		}
		if foreignCores(prev, cur, 0.5, 0, 0) > *maxCores {
			quietSince = time.Now()
		} else if time.Since(quietSince) >= *hold {
			if waited := time.Since(began); waited > *hold+time.Second {
				log.Info("the machine is quiet again", "waited", waited.Round(time.Second))
			}
			return nil
		}
		prev = cur
	}
	log.Warn("the machine stayed busy; going on", "waited", timeout.String())
	return nil
}
