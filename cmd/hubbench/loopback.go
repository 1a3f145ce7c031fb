package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// errNotLoopback refuses any address that is not on this machine's loopback.
var errNotLoopback = errors.New("hubbench: only loopback addresses may be dialed")

// checkLoopback accepts host:port whose host is a loopback IP literal or
// "localhost".
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("hubbench: address %q: %w", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", errNotLoopback, hostport)
	}
	return nil
}

// dialLoopback opens a TCP connection to a loopback address. Connections to
// an IPv4 address come from one of loopbackSources source addresses in turn
// (see spreadSource), so that tens of thousands of them to one port do not
// make the load generator's kernel search for a free ephemeral port.
func dialLoopback(ctx context.Context, hostport string) (net.Conn, error) {
	if err := checkLoopback(hostport); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if host, _, _ := net.SplitHostPort(hostport); isIPv4(host) {
		spreadSource(&d)
	}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", hostport, err)
	}
	return conn, nil
}

// isIPv4 reports whether host is an IPv4 literal ("localhost" is not: it
// may resolve to ::1).
func isIPv4(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Is4()
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when it returns; the caller binds them soon after.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("hubbench: find a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
