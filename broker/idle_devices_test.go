package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// An idle device, as the memory benchmarks see it: an MQTT 3.1.1 client
// that connects (clean session, keep alive 600 s: it would ping every ten
// minutes, and the measurements end sooner), subscribes at QoS 1 to a
// topic of its own, reads its CONNACK and SUBACK, and then holds its
// connection without a goroutine of its own.

// deviceHandshake is what device i sends: CONNECT, then SUBSCRIBE to
// "dev/<i>/cmd" (packet id 1).
func deviceHandshake(i int) (connect, subscribe []byte) {
	id := "dev-" + strconv.Itoa(i)
	body := appendString(nil, "MQTT")
	body = append(body, 4, 0x02)                    // 3.1.1, clean session
	body = binary.BigEndian.AppendUint16(body, 600) // keep alive
	body = appendString(body, id)
	connect = appendPacket(nil, 0x10, body)

	body = binary.BigEndian.AppendUint16(nil, 1) // packet id
	body = appendString(body, "dev/"+strconv.Itoa(i)+"/cmd")
	body = append(body, 1) // QoS 1
	subscribe = appendPacket(nil, 0x82, body)
	return connect, subscribe
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendPacket appends a packet of type-and-flags first with body; bodies
// here are shorter than 128 bytes (one byte of remaining length).
func appendPacket(dst []byte, first byte, body []byte) []byte {
	return append(append(dst, first, byte(len(body))), body...)
}

// The broker's answers, byte for byte: CONNACK accepted, SUBACK granting QoS 1.
var (
	wantConnack = []byte{0x20, 0x02, 0x00, 0x00}
	wantSuback  = []byte{0x90, 0x03, 0x00, 0x01, 0x01}
)

// connectDevice makes conn device i: CONNECT, CONNACK, SUBSCRIBE, SUBACK,
// each written and read in turn (so that it works over net.Pipe, whose
// writes wait for the reader), within timeout.
func connectDevice(conn net.Conn, i int, timeout time.Duration) error {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	connect, subscribe := deviceHandshake(i)
	if err := exchange(conn, connect, wantConnack); err != nil {
		return fmt.Errorf("device %d: connect: %w", i, err)
	}
	if err := exchange(conn, subscribe, wantSuback); err != nil {
		return fmt.Errorf("device %d: subscribe: %w", i, err)
	}
	return conn.SetDeadline(time.Time{})
}

// exchange writes out and reads exactly len(want) bytes, which must be want.
func exchange(conn net.Conn, out, want []byte) error {
	if _, err := conn.Write(out); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(conn, got[:len(want)]); err != nil {
		return err
	}
	if string(got[:len(want)]) != string(want) {
		return fmt.Errorf("got % x, want % x", got[:len(want)], want)
	}
	return nil
}

// connectDevices makes devices first..first+n-1 over the connections dial
// opens, workers at a time. It returns the connections (to hold and close)
// and the connects per second.
func connectDevices(dial func() (net.Conn, error), first, n, workers int) ([]net.Conn, float64, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				conn, err := dial()
				if err == nil {
					conns[i] = conn
					err = connectDevice(conn, first+i, 30*time.Second)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	return conns, rate, errors.Join(errs...)
}

// closeAll closes every connection that was opened.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// rssBytes is the resident set of process pid ("self" for this one).
func rssBytes(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + pid + "/status")
}

// TestIdleDevicesHoldOneGoroutineEach: an idle MQTT client costs the broker
// one goroutine (its reader, which the runtime's poller needs), not two: a
// writer runs only while there is something to write to it, and ends once
// it is written.
func TestIdleDevicesHoldOneGoroutineEach(t *testing.T) {
	const n, slack = 100, 5
	e := startTest(t, Config{MaxConnectionsPerAddress: n + 10, MessageRate: -1})
	base := runtime.NumGoroutine()
	conns, _, err := connectDevices(func() (net.Conn, error) { return net.Dial("tcp", e.Addr().String()) }, 0, n, 8)
	defer closeAll(conns)
	if err != nil {
		t.Fatal(err)
	}
	atMost := func(limit int) func() bool { return func() bool { return runtime.NumGoroutine() <= limit } }
	hubtest.Eventually(t, hubtest.Timeout, atMost(base+n+slack), "more than one goroutine per idle device")

	// A message for each: each gets it, and the writers started for them end.
	for i := range n {
		topic := "dev/" + strconv.Itoa(i) + "/cmd"
		if err := e.Publish(t.Context(), bridge.Message{Topic: topic, Payload: []byte("go")}); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range conns {
		topic := "dev/" + strconv.Itoa(i) + "/cmd"
		want := appendPacket(nil, 0x30, append(appendString(nil, topic), "go"...))
		var got [32]byte
		_ = c.SetReadDeadline(time.Now().Add(hubtest.Timeout))
		if _, err := io.ReadFull(c, got[:len(want)]); err != nil || string(got[:len(want)]) != string(want) {
			t.Fatalf("device %d got % x (%v), want % x", i, got[:len(want)], err, want)
		}
	}
	hubtest.Eventually(t, hubtest.Timeout, atMost(base+n+slack), "writers still running once everything was written")
}

// TestRateLimitersOnlyForPublishers: an idle device holds no message rate
// limiter; one is made at a client's first PUBLISH, and goes with the client.
func TestRateLimitersOnlyForPublishers(t *testing.T) {
	const n, publishers = 20, 5
	e := startTest(t, Config{MaxConnectionsPerAddress: n + 10, MessageRate: 100})
	limiters := func() int {
		count := 0
		e.hook.limiters.Range(func(any, any) bool { count++; return true })
		return count
	}
	conns, _, err := connectDevices(func() (net.Conn, error) { return net.Dial("tcp", e.Addr().String()) }, 0, n, 4)
	defer closeAll(conns)
	if err != nil {
		t.Fatal(err)
	}
	if got := limiters(); got != 0 {
		t.Fatalf("%d rate limiters for %d idle devices, want none", got, n)
	}

	// A few publish (QoS 0) to their own topics; each gets what it sent,
	// which says the broker has handled its PUBLISH.
	for i := range publishers {
		topic := "dev/" + strconv.Itoa(i) + "/cmd"
		pub := appendPacket(nil, 0x30, append(appendString(nil, topic), "hi"...))
		if _, err := conns[i].Write(pub); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(pub))
		_ = conns[i].SetReadDeadline(time.Now().Add(hubtest.Timeout))
		if _, err := io.ReadFull(conns[i], got); err != nil || string(got) != string(pub) {
			t.Fatalf("device %d got % x (%v), want % x", i, got, err, pub)
		}
	}
	if got := limiters(); got != publishers {
		t.Fatalf("%d rate limiters, want one for each of the %d devices that published", got, publishers)
	}

	closeAll(conns[:publishers])
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return limiters() == 0 }, "rate limiters outlive their clients")
}
