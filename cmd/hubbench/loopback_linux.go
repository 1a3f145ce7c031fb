package main

import (
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// loopbackSources is how many source addresses dialLoopback spreads its
// IPv4 connections over: 127.1.0.1 to 127.1.0.64, all on Linux's loopback
// (the whole of 127.0.0.0/8 is local).
//
// Why: the kernel gives connect() an ephemeral port unused by any
// connection with the same source address, destination address and
// destination port. From one source address to one hub port there are
// 28,232 of them (ip_local_port_range), and connect tries the even half
// first; past about 14,000 connections every connect searched the used
// ports, 3 ms of kernel time each, and the load generator's core, not the
// target, set the connect rate (1.6k–3.1k/s at 19,500 devices).
// With 64 sources, 100,000 connections use under 6 % of each one's ports.
const loopbackSources = 64

// nextSource picks the source address of the next connection.
var nextSource atomic.Uint32

// spreadSource makes d's next connection come from the next of
// loopbackSources addresses. IP_BIND_ADDRESS_NO_PORT leaves the choice of
// port to connect(), which needs it unique only among connections with the
// same addresses and destination port; without it, bind() would choose the
// port first, by its stricter rule.
func spreadSource(d *net.Dialer) {
	n := nextSource.Add(1) % loopbackSources
	d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 1, 0, byte(1+n))}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var optErr error
		err := c.Control(func(fd uintptr) {
			optErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		})
		if err != nil {
			return err
		}
		return optErr
	}
}
