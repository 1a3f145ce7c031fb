package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err := dispatch(ctx, os.Args[1:], os.Stdout, log)
	if errors.Is(err, errNotSaturated) || errors.Is(err, errNotSustained) {
		os.Exit(1) // an answer, not a failure
	}
	if errors.Is(err, errContaminated) {
		os.Exit(3) // the caller retries
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hubbench:", err)
		os.Exit(1)
	}
}

const usage = `usage: hubbench COMMAND [flags]

commands:
  run        one benchmark run; appends one JSON line to -out
  ingest     devices publishing to their own topics, dashboards on "#": one JSON line (kind "ingest")
  report     results (JSON lines) to a Markdown report
  meta       append the machine description to a results file
  skip       record a cell of the matrix that was not run, and why
  saturated  exit 0 when a cell of a results file is past saturation
  sustained  exit 0 when most repeats of an ingest rate were sustained
  wait       wait until TCP addresses accept connections (http:// URLs: until they answer 200)
  quiet      wait until other processes leave the CPUs alone
  freeport   print free loopback TCP ports
Run "hubbench COMMAND -h" for the flags of each.`

func dispatch(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return fmt.Errorf("no command given\n%s", usage)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, args, stdout, log)
	case "ingest":
		return cmdIngest(ctx, args, stdout, log)
	case "report":
		return cmdReport(args, log)
	case "meta":
		return cmdMeta(args)
	case "skip":
		return cmdSkip(args)
	case "saturated":
		return cmdSaturated(args)
	case "sustained":
		return cmdSustained(args)
	case "wait":
		return cmdWait(ctx, args)
	case "quiet":
		return cmdQuiet(ctx, args, log)
	case "freeport":
		return cmdFreePort(args, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// errContaminated is a run that other processes competed with: run.sh
// retries it.
var errContaminated = errors.New("other processes competed for the CPU")

func cmdRun(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var res0Attempt int
	var cfg runConfig
	var out string
	var maxForeign float64
	var lastTry bool
	var subs, pids, procs string
	fs.StringVar(&cfg.Target, "target", "motehub", "label of the target: motehub, centrifugo, nats or mosquitto")
	fs.StringVar(&cfg.Transport, "transport", transportWS, "ws, ws-batch, sse (motehub), mqtt-ws (Mosquitto), cent-ws (Centrifugo), nats-ws (NATS), or mqtt-tcp (idle devices, motehub and Mosquitto)")
	fs.BoolVar(&cfg.Idle, "idle", false, "connect the subscribers, read the target's memory, publish nothing")
	fs.StringVar(&cfg.Variant, "variant", "pinned", "label: how target and load generator share the CPUs")
	fs.BoolVar(&cfg.Probe, "probe", false, "mark the run as the low-rate latency probe")
	fs.IntVar(&cfg.Repeat, "repeat", 1, "label: the repeat number")
	fs.StringVar(&subs, "sub", "", "host:port the subscribers connect to (loopback only); several, comma-separated (replicas): the subscribers are spread over them round-robin")
	fs.StringVar(&cfg.PubAddr, "pub", "", "host:port the publisher connects to (loopback only): the target's MQTT/TCP listener, NATS's client port, or Centrifugo's HTTP server")
	fs.StringVar(&cfg.APIKey, "api-key", "hubbench", "Centrifugo's HTTP API key (X-API-Key)")
	fs.IntVar(&cfg.HTTPPublishers, "http-publishers", 32, "Centrifugo: publish requests in flight at once, each on its own connection")
	fs.StringVar(&pids, "pid", "", "PID of the target process, for its CPU time and memory; several, comma-separated: the target's figures are their sums")
	fs.StringVar(&procs, "procs", "", "the target's processes as LABEL=PID, comma-separated (hub1=PID,nats0=PID,...): each one's CPU and memory is recorded, the target's figures are their sums (with -pid: after its PIDs)")
	fs.StringVar(&cfg.Layout, "layout", "", "label: the target's layout when it is several processes (\"2 replicas\"); the report shows such runs in their own section")
	fs.StringVar(&cfg.GCTrace, "gctrace", "", "file with the target's GODEBUG=gctrace=1 output (Go targets), for its live heap")
	fs.IntVar(&cfg.Subscribers, "subs", 100, "subscribers")
	fs.Float64Var(&cfg.Rate, "rate", 100, "messages published per second")
	fs.IntVar(&cfg.Payload, "payload", 100, "payload bytes")
	fs.StringVar(&cfg.Topic, "topic", "bench/t", "topic published to")
	fs.StringVar(&cfg.Filter, "filter", "bench/#", "filter subscribed to")
	fs.DurationVar(&cfg.Warmup, "warmup", 5*time.Second, "warm-up before the measured window")
	fs.DurationVar(&cfg.Measure, "measure", 15*time.Second, "measured window")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "pause after connecting, before idle memory is read")
	fs.DurationVar(&cfg.MaxDrain, "drain", 3*time.Second, "longest wait for messages in flight after the last publish")
	fs.IntVar(&cfg.Parallel, "parallel", 64, "connects in flight at once")
	fs.StringVar(&cfg.During, "during", "", "shell command to run during the measured window ($PID is the target's)")
	fs.BoolVar(&cfg.DumpOnStall, "dump-on-stall", false, "SIGQUIT the target (a Go program) when it delivered nothing, so it prints its goroutine stacks")
	fs.StringVar(&out, "out", "-", "results file to append to (- for stdout)")
	fs.Float64Var(&maxForeign, "max-foreign", 0, "when other processes used more CPU than this (cores) in the window, record nothing and exit 3 so the caller retries (0: no check)")
	fs.BoolVar(&lastTry, "last-try", false, "with -max-foreign: record the run whatever the other processes did")
	fs.IntVar(&res0Attempt, "attempt", 0, "label: which try of this run this is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.parseTargets(subs, pids, procs); err != nil {
		return err
	}
	if cfg.Subscribers < 1 {
		return errors.New("run: -subs ≥ 1 is required")
	}
	if cfg.Idle {
		cfg.Rate, cfg.Warmup, cfg.Measure = 0, 0, 0
	} else if cfg.Rate <= 0 || cfg.Measure <= 0 {
		return errors.New("run: -rate > 0 and -measure > 0 are required (or -idle)")
	}
	// Everything the run does is bounded by this deadline.
	limit := cfg.Warmup + cfg.Measure + cfg.Settle + cfg.MaxDrain +
		time.Duration(cfg.Subscribers/max(cfg.Parallel, 1)+1)*connectTimeout + time.Minute
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	log = log.With("target", cfg.Target, "transport", cfg.Transport, "subs", cfg.Subscribers, "rate", cfg.Rate)
	res, err := runBench(ctx, cfg, log)
	res.Attempt = res0Attempt
	if err == nil && maxForeign > 0 && res.ForeignCores > maxForeign && !lastTry && !cfg.Idle {
		log.Warn("other processes competed for the CPU: not recorded", "foreign_cores", res.ForeignCores, "max", maxForeign)
		return errContaminated
	}
	switch {
	case err != nil:
		res.Error = err.Error()
		log.Error("run failed", "err", err)
	case cfg.Idle:
		log.Info("idle run done", "connected", res.Connected, "connect_s", round(res.ConnectSeconds, 2),
			"mem_per_conn_bytes", int(res.MemPerConnBytes), "dropped", res.Dropped)
	default:
		log.Info("run done", "delivered_per_s", int(res.DeliveredPerSec), "ratio", round(res.DeliveryRatio, 5),
			"p50_ms", float64(res.LatencyUs.P50)/1000, "p99_ms", float64(res.LatencyUs.P99)/1000,
			"cpu_s_per_m", round(res.CPUPerMDeliveries, 3), "target_cores", round(res.TargetCPUCores, 2),
			"loadgen_cores", round(res.LoadgenCPUCores, 2), "cpu_busy", res.CPUBusy, "softirq", res.CPUSoftIRQ,
			"steal", res.CPUSteal, "foreign_cores", res.ForeignCores, "dropped", res.Dropped)
	}
	if werr := appendJSONLine(out, res); werr != nil {
		return errors.Join(err, werr)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errRunFailed, err)
	}
	return nil
}

func cmdFreePort(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("freeport", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ports, err := freePorts(*n)
	if err != nil {
		return err
	}
	for _, p := range ports {
		fmt.Fprintln(stdout, p)
	}
	return nil
}

func cmdWait(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 10*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for _, addr := range fs.Args() {
		if strings.HasPrefix(addr, "http://") {
			if err := waitReady(ctx, addr); err != nil {
				return err
			}
			continue
		}
		for {
			conn, err := dialLoopback(ctx, addr)
			if err == nil {
				_ = conn.Close()
				break
			}
			if errors.Is(err, errNotLoopback) || ctx.Err() != nil {
				return fmt.Errorf("wait for %s: %w", addr, err)
			}
			sleepUntil(ctx, time.Now().Add(20*time.Millisecond))
		}
	}
	return nil
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
