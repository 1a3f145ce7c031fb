package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// result is one run: one JSON object per line of the results file.
type result struct {
	Kind      string `json:"kind"` // "run"
	Time      string `json:"time"` // RFC 3339, when the run started
	Target    string `json:"target"`
	Transport string `json:"transport"`
	Variant   string `json:"variant"` // how target and load generator were placed on the CPUs
	// Layout labels a run of several target processes (hub replicas behind
	// a broker cluster, "2 replicas"); the report shows them apart.
	Layout string `json:"layout,omitempty"`
	Probe  bool   `json:"probe,omitempty"`
	Idle   bool   `json:"idle,omitempty"` // connected and measured idle; nothing published
	Repeat int    `json:"repeat"`

	Subscribers  int     `json:"subscribers"`
	Rate         float64 `json:"rate"`    // messages/s published
	Offered      float64 `json:"offered"` // deliveries/s asked for: subscribers × rate
	PayloadBytes int     `json:"payload_bytes"`
	WarmupS      float64 `json:"warmup_s"`
	MeasureS     float64 `json:"measure_s"`

	Connected      int     `json:"connected"`
	ConnectFailed  int     `json:"connect_failed"`
	ConnectError   string  `json:"connect_error,omitempty"`
	ConnectSeconds float64 `json:"connect_s"`
	ConnectP99Ms   float64 `json:"connect_p99_ms"`

	Published       uint64  `json:"published"`                // by the publisher, whole run
	PublisherBehind uint64  `json:"publisher_behind"`         // messages due that it could not send in time
	PublishFailed   uint64  `json:"publish_failed,omitempty"` // HTTP publish requests that failed (Centrifugo)
	PublishError    string  `json:"publish_error,omitempty"`  // the first of them
	Expected        uint64  `json:"expected"`                 // deliveries due in the window: subscribers × window messages
	Delivered       uint64  `json:"delivered"`                // distinct window messages received, all subscribers
	DeliveredPerSec float64 `json:"delivered_per_s"`
	DeliveryRatio   float64 `json:"delivery_ratio"`
	Duplicates      uint64  `json:"duplicates"`
	Reordered       uint64  `json:"reordered"`
	Dropped         int     `json:"dropped"` // connections that ended before the run did
	DropReason      string  `json:"drop_reason,omitempty"`
	Others          uint64  `json:"others"` // lines or packets that were not bench messages

	LatencyUs latencySummary `json:"latency_us"`

	TargetCPUSeconds  float64 `json:"target_cpu_s"`
	CPUPerMDeliveries float64 `json:"cpu_s_per_m_deliveries"`
	TargetCPUCores    float64 `json:"target_cpu_cores"`
	LoadgenCPUCores   float64 `json:"loadgen_cpu_cores"`
	// Per CPU of the machine, over the window, from /proc/stat: busy
	// (everything but idle and iowait, softirq and steal included), softirq
	// (where loopback TCP is processed, charged to no process), and steal
	// (time the hypervisor gave to someone else).
	CPUBusy    []float64 `json:"cpu_busy"`
	CPUSoftIRQ []float64 `json:"cpu_softirq"`
	CPUSteal   []float64 `json:"cpu_steal"`
	// ForeignCores is the CPU other processes used during the window (see
	// foreignCores); Attempt is which try this was (run.sh retries a run
	// that competed with too much of it).
	ForeignCores float64 `json:"foreign_cores"`
	Attempt      int     `json:"attempt,omitempty"`

	RSSNoneKB       int64   `json:"rss_none_kb"`
	RSSIdleKB       int64   `json:"rss_idle_kb"`
	RSSPeakKB       int64   `json:"rss_peak_kb"`
	MemPerConnBytes float64 `json:"mem_per_conn_bytes"`
	HeapNoneMB      int64   `json:"heap_none_mb"` // Go live heap after the last GC; -1 unknown
	HeapIdleMB      int64   `json:"heap_idle_mb"`
	HeapPeakMB      int64   `json:"heap_peak_mb"`

	// Procs is every process of the target, one by one, when there are
	// several (or they were labelled); the target_* and rss_* figures above
	// are their sums. SubAddrs is the subscribers' split when they were
	// spread over several addresses.
	Procs    []procResult    `json:"procs,omitempty"`
	SubAddrs []subAddrResult `json:"sub_addrs,omitempty"`

	Error string `json:"error,omitempty"`

	// Session is the index of the meta record before the run in its
	// results file: which invocation of bench/run.sh took it.
	Session int `json:"-"`
}

type latencySummary struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	P999  int64 `json:"p999"`
	Max   int64 `json:"max"`
}

// meta describes the machine and the command of one bench session; run.sh
// writes one before its runs.
type meta struct {
	Kind      string `json:"kind"` // "meta"
	Date      string `json:"date"`
	Nproc     int    `json:"nproc"`
	CPU       string `json:"cpu"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	Mosquitto string `json:"mosquitto"`
	Command   string `json:"command"`
	Mode      string `json:"mode"` // "quick" or "full"
	Notes     string `json:"notes,omitempty"`
}

// skipped is a cell of the matrix that run.sh did not run, and why.
type skipped struct {
	Kind      string  `json:"kind"` // "skip"
	Variant   string  `json:"variant"`
	Target    string  `json:"target"`
	Transport string  `json:"transport"`
	Subs      int     `json:"subscribers"`
	Offered   float64 `json:"offered"`
	Reason    string  `json:"reason"`
}

// appendJSONLine appends v as one line to path ("-" or "": stdout).
func appendJSONLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	if path == "" || path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("results file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("results file: %w", err)
	}
	return f.Close()
}

// results is what a results file holds, in order.
type results struct {
	Metas   []meta
	Runs    []result
	Skips   []skipped
	Ingests []ingestRecord // hubbench ingest's runs
}

// ingestRecord is one hubbench ingest run and the session that took it.
type ingestRecord struct {
	ingestResult
	Session int // as result.Session
}

// readResults reads a results file.
func readResults(r io.Reader) (results, error) {
	var rs results
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var kind struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(line, &kind); err != nil {
			return rs, fmt.Errorf("results line %d: %w", n, err)
		}
		switch kind.Kind {
		case "meta":
			var m meta
			if err := json.Unmarshal(line, &m); err != nil {
				return rs, fmt.Errorf("results line %d: %w", n, err)
			}
			rs.Metas = append(rs.Metas, m)
		case "run":
			var res result
			if err := json.Unmarshal(line, &res); err != nil {
				return rs, fmt.Errorf("results line %d: %w", n, err)
			}
			res.Session = len(rs.Metas) - 1
			rs.Runs = append(rs.Runs, res)
		case "ingest":
			var in ingestResult
			if err := json.Unmarshal(line, &in); err != nil {
				return rs, fmt.Errorf("results line %d: %w", n, err)
			}
			rs.Ingests = append(rs.Ingests, ingestRecord{in, len(rs.Metas) - 1})
		case "skip":
			var sk skipped
			if err := json.Unmarshal(line, &sk); err != nil {
				return rs, fmt.Errorf("results line %d: %w", n, err)
			}
			rs.Skips = append(rs.Skips, sk)
		default:
			return rs, fmt.Errorf("results line %d: unknown kind %q", n, kind.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		return rs, fmt.Errorf("read results: %w", err)
	}
	return rs, nil
}
