package broker

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"
)

var idleProfileDir = flag.String("idleprofile", "", "`DIR` where BenchmarkIdleDevices writes heap and goroutine profiles of its idle devices")

// BenchmarkIdleDevices: what an idle MQTT device with one subscription
// costs the embedded broker, in this process, and how fast devices
// connect. Run with -benchtime 1x:
//
//	go test ./broker -run '^$' -bench IdleDevices -benchtime 1x
//
// "tcp" devices connect over loopback TCP (this process holds both ends,
// so at most about 9,000 fit under the sandbox's 20,000 open files);
// "pipe" devices over net.Pipe, served by the same listener code as TCP,
// to show 100,000 devices on one broker. Reported: heap+stack/device
// (the Go heap in use plus goroutine stacks, after a collection, with the
// devices minus without, over the devices; the device's own end of the
// connection included: a net.Pipe end or a TCP socket's Go side),
// RSS/device (the same for the process's resident set), goroutines/device,
// stack-before-GC-B/device (the stacks as handling CONNECT and SUBSCRIBE
// grew them: collections shrink them later), and connects/s.
func BenchmarkIdleDevices(b *testing.B) {
	for _, run := range []struct {
		name string
		n    int
		pipe bool
	}{
		{"tcp-2000", 2000, false},
		{"tcp-9000", 9000, false},
		{"pipe-100000", 100_000, true},
	} {
		b.Run(run.name, func(b *testing.B) {
			for b.Loop() {
				measureIdleDevices(b, run.name, run.n, run.pipe)
			}
		})
	}
}

func measureIdleDevices(b *testing.B, name string, n int, pipe bool) {
	if *idleProfileDir != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1 // every allocation, for a profile that adds up
	}
	e := startTest(b, Config{
		MaxConnections: n + 10, MaxConnectionsPerAddress: n + 10, MaxSessions: n + 10,
		ConnectTimeout: time.Minute,
	})
	dial := func() (net.Conn, error) { return net.Dial("tcp", e.Addr().String()) }
	if pipe {
		dial = servePipes(b, e)
	}
	heap0, stack0, rss0 := idleMemory(b)
	goroutines0 := runtime.NumGoroutine()
	conns, rate, err := connectDevices(dial, 0, n, 64)
	defer closeAll(conns)
	if err != nil {
		b.Fatal(err)
	}
	var grown runtime.MemStats
	runtime.ReadMemStats(&grown) // the stacks as handling CONNECT and SUBSCRIBE left them, before a collection shrinks them
	heap1, stack1, rss1 := idleMemory(b)
	if *idleProfileDir != "" {
		writeProfiles(b, filepath.Join(*idleProfileDir, name))
	}
	perDevice := func(v1, v0 uint64) float64 { return (float64(v1) - float64(v0)) / float64(n) }
	b.ReportMetric(perDevice(heap1+stack1, heap0+stack0), "heap+stack-B/device")
	b.ReportMetric(perDevice(heap1, heap0), "heap-B/device")
	b.ReportMetric(perDevice(stack1, stack0), "stack-B/device")
	b.ReportMetric(perDevice(grown.StackInuse, stack0), "stack-before-GC-B/device")
	b.ReportMetric(perDevice(rss1, rss0), "RSS-B/device")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines0)/float64(n), "goroutines/device")
	b.ReportMetric(rate, "connects/s")
}

// idleMemory is the heap in use, the goroutine stacks and the resident set,
// after a collection.
func idleMemory(b *testing.B) (heap, stack, rss uint64) {
	for range 4 { // each collection halves the stacks that use a quarter or less of theirs
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r, err := rssBytes("self")
	if err != nil {
		b.Fatal(err)
	}
	return m.HeapAlloc, m.StackInuse, uint64(r)
}

// writeProfiles writes the heap and goroutine profiles as dir/heap.pprof
// and dir/goroutine.txt.
func writeProfiles(b *testing.B, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for name, write := range map[string]func(f *os.File) error{
		"heap.pprof":    func(f *os.File) error { return pprof.Lookup("heap").WriteTo(f, 0) },
		"goroutine.txt": func(f *os.File) error { return pprof.Lookup("goroutine").WriteTo(f, 1) },
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// servePipes adds to e a listener of in-memory connections, served by the
// same code as its TCP listener, and returns how to dial it: each dial
// hands the server's end of a net.Pipe to the listener and returns the
// device's end.
func servePipes(b *testing.B, e *Embedded) func() (net.Conn, error) {
	ln := &pipeListener{accept: make(chan net.Conn), done: make(chan struct{})}
	l := newTCPListener("mqtt-pipe", ln, e.connLimits(), e.cfg.Refusals, e.disconnectListener)
	if err := e.server.AddListener(l); err != nil {
		b.Fatal(err)
	}
	e.server.Listeners.Serve(l.ID(), e.server.EstablishConnection)
	l.admit()
	return ln.dial
}

// pipeListener is a net.Listener of in-memory connections.
type pipeListener struct {
	accept    chan net.Conn // the server's ends, to Accept
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func (l *pipeListener) dial() (net.Conn, error) {
	server, device := net.Pipe()
	select {
	case l.accept <- server:
		return device, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
