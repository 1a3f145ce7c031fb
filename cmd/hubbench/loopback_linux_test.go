package main

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Not parallel: it counts consecutive picks of the shared source counter.
func TestDialLoopbackSpreadsSources(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sources := map[netip.Addr]int{}
	for range 2 * loopbackSources {
		c, err := dialLoopback(ctx, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		accepted, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		from := accepted.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		if from != c.LocalAddr().(*net.TCPAddr).AddrPort().Addr() {
			t.Errorf("the listener sees %v, the dialer says %v", from, c.LocalAddr())
		}
		sources[from]++
		_ = accepted.Close()
		_ = c.Close()
	}
	spread := netip.MustParsePrefix("127.1.0.0/24")
	for a, n := range sources {
		if !spread.Contains(a) || n != 2 {
			t.Errorf("%d connections from %v, want 2 from each address of %v", n, a, spread)
		}
	}
	if len(sources) != loopbackSources {
		t.Errorf("connections came from %d addresses, want %d", len(sources), loopbackSources)
	}
}
