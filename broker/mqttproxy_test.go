package broker

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// mqttProxy stands between the Remote and a real broker, on loopback, to
// make a node misbehave in either protocol version (the fixed header and a
// PUBLISH's topic are the same in MQTT 3.1.1 and 5): flap hangs up right
// after the broker's CONNACK has passed (a node that takes the connection
// and drops it at once); hangOn hangs up, without forwarding it, on the
// client's PUBLISH to that topic (a node dying with a command in flight).
type mqttProxy struct {
	ln     net.Listener
	target string
	flap   bool
	hangOn string

	mu       sync.Mutex
	conns    map[net.Conn]struct{} // open on either side; closed by close
	accepted []time.Time           // when each connection came; at most a test's connections
	wg       sync.WaitGroup
}

func startMQTTProxy(t *testing.T, target string, set func(*mqttProxy)) *mqttProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &mqttProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	if set != nil {
		set(p)
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *mqttProxy) Addr() string { return p.ln.Addr().String() }

// connections returns when each connection was accepted.
func (p *mqttProxy) connections() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.accepted...)
}

func (p *mqttProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted = append(p.accepted, time.Now())
		p.mu.Unlock()
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, b) {
			return
		}
		hangUp := func() { _ = c.Close(); _ = b.Close() }
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer hangUp()
			p.pipe(b, c, func(typ byte, _ []byte) bool { return p.flap && typ == 2 }, true)
		}()
		go func() {
			defer p.wg.Done()
			defer hangUp()
			p.pipe(c, b, func(typ byte, body []byte) bool {
				return typ == 3 && p.hangOn != "" && publishTopic(body) == p.hangOn
			}, false)
		}()
	}
}

// track records the two sides of a connection, unless the proxy is closed.
func (p *mqttProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies MQTT packets from src to dst until either fails, or until
// stop says to hang up: after forwarding the packet (after) or instead of
// it.
func (p *mqttProxy) pipe(src, dst net.Conn, stop func(typ byte, body []byte) bool, after bool) {
	r := bufio.NewReader(src)
	for {
		header, err := r.ReadByte()
		if err != nil {
			return
		}
		n, err := binary.ReadUvarint(r) // MQTT's remaining length is this varint
		if err != nil || n > 1<<20 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		hang := stop(header>>4, body)
		if hang && !after {
			return
		}
		var lenBuf [binary.MaxVarintLen64]byte
		packet := append([]byte{header}, lenBuf[:binary.PutUvarint(lenBuf[:], n)]...)
		if _, err := dst.Write(append(packet, body...)); err != nil || hang {
			return
		}
	}
}

// publishTopic is the topic of a PUBLISH's body.
func publishTopic(body []byte) string {
	if len(body) < 2 {
		return ""
	}
	l := int(binary.BigEndian.Uint16(body))
	return string(body[2:min(len(body), 2+l)])
}

func (p *mqttProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
