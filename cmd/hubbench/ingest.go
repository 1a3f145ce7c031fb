package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// hubbench ingest: D MQTT devices, each publishing to its own topic, at a
// total rate R, into the hub; K dashboards subscribed to "#" count what
// reaches them. It answers "how many device messages a second can the hub
// take in and fan out to a few dashboards", and what each costs the hub in
// CPU. One JSON line (kind "ingest") per run.

// ingestConfig is one ingest run.
type ingestConfig struct {
	Target  string // a label: "motehub", or another broker
	Variant string // a label: how the processes were placed on the CPUs
	Data    bool   // a label: the target persists (the hub's --data)
	History bool   // a label: the hub records history in --data (not --history-bytes 0)
	Repeat  int    // a label
	DataDir string // the target's --data directory, sized at the end of the run ("": not sized)

	SubAddr string // host:port the dashboards connect to
	PubAddr string // host:port of the target's MQTT/TCP listener
	PID     string // the target process, for /proc

	Devices    int     // MQTT connections, one topic each
	Dashboards int     // subscribers on Filter
	Rate       float64 // messages/s, all devices together
	Payload    int     // bytes
	Topics     string  // device i publishes to fmt.Sprintf(Topics, i)
	Filter     string  // what the dashboards subscribe to
	Transport  string  // ws or sse
	Overflow   string  // the dashboards' overflow option ("" leaves the hub's default)
	Senders    int     // goroutines that pace the devices' publishes

	Warmup, Measure time.Duration
	Settle          time.Duration // after the last connect, before the first publish
	MaxDrain        time.Duration // longest wait for stragglers after the last publish
	Parallel        int           // connects in flight at once
}

// ingestResult is one ingest run: one JSON line of kind "ingest".
type ingestResult struct {
	Kind      string  `json:"kind"` // "ingest"
	Time      string  `json:"time"` // RFC 3339, when the run started
	Target    string  `json:"target"`
	Variant   string  `json:"variant"`
	Data      bool    `json:"data"`    // the target persisted (label)
	History   bool    `json:"history"` // the hub recorded history in --data (label)
	Repeat    int     `json:"repeat"`
	Transport string  `json:"transport"`
	Overflow  string  `json:"overflow,omitempty"`
	Devices   int     `json:"devices"`
	Dashboard int     `json:"dashboards"`
	Rate      float64 `json:"rate"` // messages/s asked for, all devices
	Payload   int     `json:"payload_bytes"`
	WarmupS   float64 `json:"warmup_s"`
	MeasureS  float64 `json:"measure_s"`

	DevicesConnected    int     `json:"devices_connected"`
	DashboardsConnected int     `json:"dashboards_connected"`
	ConnectSeconds      float64 `json:"connect_s"`
	ConnectError        string  `json:"connect_error,omitempty"`

	Published       uint64  `json:"published"`        // whole run
	PublisherBehind uint64  `json:"publisher_behind"` // due by the end, never sent
	DeviceErrors    int     `json:"device_errors"`    // devices whose connection failed during the run
	WindowMessages  uint64  `json:"window_messages"`  // published inside the measured window
	PublishedPerSec float64 `json:"published_per_s"`  // window messages / window
	Expected        uint64  `json:"expected"`         // window messages × dashboards connected
	Delivered       uint64  `json:"delivered"`        // distinct window messages received, all dashboards
	DeliveryRatio   float64 `json:"delivery_ratio"`
	CutOff          int     `json:"cut_off"` // dashboards whose connection ended before the run did
	CutReason       string  `json:"cut_reason,omitempty"`
	Others          uint64  `json:"others"` // lines that were not bench messages (error frames among them)

	LatencyUs latencySummary `json:"latency_us"` // device send to dashboard receipt, window messages

	TargetCPUSeconds float64   `json:"target_cpu_s"`
	CPUUsPerMessage  float64   `json:"cpu_us_per_message"`  // target CPU / window messages
	CPUUsPerDelivery float64   `json:"cpu_us_per_delivery"` // target CPU / deliveries
	TargetCPUCores   float64   `json:"target_cpu_cores"`
	LoadgenCPUCores  float64   `json:"loadgen_cpu_cores"`
	ForeignCores     float64   `json:"foreign_cores"`
	CPUBusy          []float64 `json:"cpu_busy"`
	CPUSoftIRQ       []float64 `json:"cpu_softirq"`
	RSSIdleKB        int64     `json:"rss_idle_kb"`
	RSSPeakKB        int64     `json:"rss_peak_kb"`
	DataBytes        int64     `json:"data_bytes,omitempty"` // the files in -data-dir at the end of the run, the target still running
	Attempt          int       `json:"attempt,omitempty"`
	Error            string    `json:"error,omitempty"`
	Sustained        bool      `json:"sustained"` // ≥ 99.9 % delivered, p99 < 1 s, nobody cut off, publisher on time
}

func cmdIngest(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var cfg ingestConfig
	var out string
	var maxForeign float64
	var lastTry bool
	var attempt int
	fs.StringVar(&cfg.Target, "target", "motehub", "label of the target")
	fs.StringVar(&cfg.Variant, "variant", "pinned", "label: how target and load generator share the CPUs")
	fs.BoolVar(&cfg.Data, "data", false, "label: the target persists (the hub runs with --data DIR)")
	fs.BoolVar(&cfg.History, "history", false, "label: the hub records history in --data (--history-bytes not 0)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "the target's --data `DIR`: the size of its files at the end of the run is recorded (data_bytes)")
	fs.IntVar(&cfg.Repeat, "repeat", 1, "label: the repeat number")
	fs.StringVar(&cfg.SubAddr, "sub", "", "host:port the dashboards connect to (loopback only)")
	fs.StringVar(&cfg.PubAddr, "pub", "", "host:port of the target's MQTT/TCP listener (loopback only)")
	fs.StringVar(&cfg.PID, "pid", "", "PID of the target process, for its CPU time and memory")
	fs.IntVar(&cfg.Devices, "devices", 2000, "MQTT devices, each publishing to its own topic")
	fs.IntVar(&cfg.Dashboards, "dashboards", 10, "dashboards subscribed to -filter")
	fs.Float64Var(&cfg.Rate, "rate", 20000, "messages per second, all devices together")
	fs.IntVar(&cfg.Payload, "payload", 100, "payload bytes")
	fs.StringVar(&cfg.Topics, "topics", "bench/dev%d/data", "device i publishes to this with %d replaced by i (the default makes each device a device of its own in the hub's model)")
	fs.StringVar(&cfg.Filter, "filter", "#", "filter the dashboards subscribe to")
	fs.StringVar(&cfg.Transport, "transport", transportWS, "dashboards' transport: ws (Clown.Talk), sse, or mqtt-ws (MQTT over WebSocket at /mqtt, as MQTT.js: Mosquitto)")
	fs.StringVar(&cfg.Overflow, "overflow", "", `dashboards' overflow option ("latest": newest value per topic instead of being cut off; "": the hub's default)`)
	fs.IntVar(&cfg.Senders, "senders", 4, "goroutines pacing the devices' publishes")
	fs.DurationVar(&cfg.Warmup, "warmup", 5*time.Second, "warm-up before the measured window")
	fs.DurationVar(&cfg.Measure, "measure", 15*time.Second, "measured window")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "pause after connecting, before the first publish")
	fs.DurationVar(&cfg.MaxDrain, "drain", 3*time.Second, "longest wait for messages in flight after the last publish")
	fs.IntVar(&cfg.Parallel, "parallel", 64, "connects in flight at once")
	fs.StringVar(&out, "out", "-", "results file to append to (- for stdout)")
	fs.Float64Var(&maxForeign, "max-foreign", 0, "when other processes used more CPU than this (cores) in the window, record nothing and exit 3 so the caller retries (0: no check)")
	fs.BoolVar(&lastTry, "last-try", false, "with -max-foreign: record the run whatever the other processes did")
	fs.IntVar(&attempt, "attempt", 0, "label: which try of this run this is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	limit := cfg.Warmup + cfg.Measure + cfg.Settle + cfg.MaxDrain +
		time.Duration((cfg.Devices+cfg.Dashboards)/max(cfg.Parallel, 1)+1)*connectTimeout + time.Minute
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	log = log.With("target", cfg.Target, "devices", cfg.Devices, "dashboards", cfg.Dashboards, "rate", cfg.Rate)
	res, err := runIngest(ctx, cfg, log)
	res.Attempt = attempt
	if err == nil && maxForeign > 0 && res.ForeignCores > maxForeign && !lastTry {
		log.Warn("other processes competed for the CPU: not recorded", "foreign_cores", res.ForeignCores, "max", maxForeign)
		return errContaminated
	}
	if err != nil {
		res.Error = err.Error()
		log.Error("ingest failed", "err", err)
	} else {
		log.Info("ingest done", "published_per_s", int(res.PublishedPerSec), "ratio", round(res.DeliveryRatio, 5),
			"p50_ms", float64(res.LatencyUs.P50)/1000, "p99_ms", float64(res.LatencyUs.P99)/1000,
			"cpu_us_per_message", round(res.CPUUsPerMessage, 2), "target_cores", round(res.TargetCPUCores, 2),
			"loadgen_cores", round(res.LoadgenCPUCores, 2), "cut_off", res.CutOff, "behind", res.PublisherBehind,
			"foreign_cores", res.ForeignCores, "data_bytes", res.DataBytes, "sustained", res.Sustained)
	}
	if werr := appendJSONLine(out, res); werr != nil {
		return errors.Join(err, werr)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errRunFailed, err)
	}
	return nil
}

func (c *ingestConfig) check() error {
	for _, a := range []string{c.SubAddr, c.PubAddr} {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	switch {
	case c.PID == "":
		return errors.New("ingest: -pid is required")
	case c.Devices < 1 || c.Dashboards < 0 || c.Senders < 1:
		return errors.New("ingest: -devices ≥ 1, -dashboards ≥ 0 and -senders ≥ 1")
	case c.Rate <= 0 || c.Measure <= 0 || c.Warmup < 0:
		return errors.New("ingest: -rate > 0, -measure > 0 and -warmup ≥ 0")
	case c.Transport != transportWS && c.Transport != transportSSE && c.Transport != transportMQTTWS:
		return fmt.Errorf("ingest: -transport %q: ws, sse or mqtt-ws", c.Transport)
	case c.Transport == transportMQTTWS && c.Overflow != "":
		return errors.New("ingest: -overflow is a Clown.Talk option: not with -transport mqtt-ws")
	case strings.Count(c.Topics, "%d") != 1 || strings.Count(c.Topics, "%") != 1:
		return fmt.Errorf("ingest: -topics %q must hold %%d once, and no other %%", c.Topics)
	case c.Payload < 0 || c.Payload > 1<<16:
		return errors.New("ingest: -payload between 0 and 65536 bytes")
	case c.History && !c.Data:
		return errors.New("ingest: -history is history in --data: give -data too")
	}
	return nil
}
