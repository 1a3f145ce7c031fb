package main

import (
	"errors"
	"fmt"
	"strings"
)

// Several subscriber addresses: the replicas of one deployment (hubs in
// front of one broker cluster). -sub a,b spreads the subscribers over them
// round-robin: subscriber i connects to address i mod len.

// maxSubAddrs bounds how many addresses one run spreads its subscribers over.
const maxSubAddrs = 64

// parseAddrList reads a comma-separated list of loopback host:port
// addresses; it needs at least one.
func parseAddrList(flagName, list string) ([]string, error) {
	var out []string
	for a := range strings.SplitSeq(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-%s: no address given", flagName)
	}
	if len(out) > maxSubAddrs {
		return nil, fmt.Errorf("-%s: %d addresses: at most %d", flagName, len(out), maxSubAddrs)
	}
	var errs []error
	for _, a := range out {
		if err := checkLoopback(a); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// subAddrResult is what the subscribers of one address received.
type subAddrResult struct {
	Addr        string `json:"addr"`
	Subscribers int    `json:"subscribers"` // asked for at this address
	Connected   int    `json:"connected"`
	Delivered   uint64 `json:"delivered"` // distinct window messages, all its subscribers
	Dropped     int    `json:"dropped"`   // its connections that ended before the run did
}

// addrOf is the address subscriber i connects to.
func (c *runConfig) addrOf(i int) string { return c.SubAddrs[i%len(c.SubAddrs)] }

// record adds to res what the run learned per process and, when the
// subscribers were spread over several addresses, per address. It runs
// when the run ends, whatever its outcome.
func (b *bench) record(res *result) {
	if len(b.cfg.Procs) > 1 || b.cfg.Procs[0].Label != b.cfg.Procs[0].PID {
		res.Procs = b.procs.res
	}
	if len(b.cfg.SubAddrs) < 2 {
		return
	}
	res.SubAddrs = make([]subAddrResult, len(b.cfg.SubAddrs))
	for k, a := range b.cfg.SubAddrs {
		res.SubAddrs[k] = subAddrResult{Addr: a, Dropped: int(b.addrDropped[k].Load())}
	}
	for i := range b.cfg.Subscribers {
		r := &res.SubAddrs[i%len(res.SubAddrs)]
		r.Subscribers++
		if i < len(b.subs) && b.subs[i] != nil {
			r.Connected++
		}
		if i < len(b.deliveredBy) {
			r.Delivered += b.deliveredBy[i]
		}
	}
}

// parseTargets reads run's -sub, -pid and -procs into c and checks the
// addresses (the publisher's too, unless the run is idle).
func (c *runConfig) parseTargets(subs, pids, procs string) error {
	var err error
	if c.SubAddrs, err = parseAddrList("sub", subs); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if !c.Idle {
		if err := checkLoopback(c.PubAddr); err != nil {
			return fmt.Errorf("run: -pub: %w", err)
		}
	}
	if c.Procs, err = parseProcs(pids, procs); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if len(c.Procs) == 0 {
		return errors.New("run: -pid or -procs is required")
	}
	c.normalize()
	return nil
}
