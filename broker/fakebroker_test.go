package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeBroker is a minimal MQTT 3.1.1 server on loopback for the faults a
// real broker does not make on demand: it answers CONNECT, SUBSCRIBE and
// PINGREQ, and hands each PUBLISH to onPublish, which decides what happens
// (acknowledge it, ignore it, or drop the connection).
type fakeBroker struct {
	ln net.Listener
	// connack, when set, is the CONNACK return code (0: accepted); noConnack
	// makes the broker read the CONNECT and never answer it.
	connack   byte
	noConnack bool
	onPublish func(p fakePublish) fakeAction
	// mute, once set, makes the broker read on and answer nothing: a peer
	// gone silent behind an open connection.
	mute atomic.Bool
	// refuse, while set, is a filter whose SUBSCRIBE the broker refuses
	// (return code 0x80), as an ACL or a cluster node without its storage
	// would.
	refuse atomic.Pointer[string]

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	publish  []fakePublish
	subs     []fakeSub
	accepted int
	wg       sync.WaitGroup
}

type fakePublish struct {
	Topic string
	QoS   byte
	ID    uint16
	Dup   bool
}

// fakeSub is one filter of a SUBSCRIBE, and whether it was granted.
type fakeSub struct {
	Filter  string
	Granted bool
}

type fakeAction int

const (
	fakeAck  fakeAction = iota // PUBACK it (QoS 1)
	fakeDrop                   // never acknowledge it
	fakeHang                   // close the connection without a word
)

func startFakeBroker(t *testing.T, onPublish func(fakePublish) fakeAction) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if onPublish == nil {
		onPublish = func(fakePublish) fakeAction { return fakeAck }
	}
	f := &fakeBroker{ln: ln, onPublish: onPublish, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakeBroker) URL() string { return "mqtt://" + f.ln.Addr().String() }

func (f *fakeBroker) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns[c] = struct{}{}
		f.accepted++
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.forget(c)
			_ = f.serve(c)
		}()
	}
}

func (f *fakeBroker) forget(c net.Conn) {
	_ = c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// close stops accepting, ends every connection and waits for the goroutines.
func (f *fakeBroker) close() {
	_ = f.ln.Close()
	f.dropAll()
	f.wg.Wait()
}

// dropAll closes every open connection.
func (f *fakeBroker) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
	}
}

func (f *fakeBroker) publishes() []fakePublish {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakePublish(nil), f.publish...)
}

// send writes a PUBLISH of topic (QoS 0) to every open connection, as a
// broker delivers a message to its subscribers (whatever it said in its
// SUBACK).
func (f *fakeBroker) send(topic, payload string) {
	body := binary.BigEndian.AppendUint16(nil, uint16(len(topic)))
	body = append(append(body, topic...), payload...)
	pk := binary.AppendUvarint([]byte{0x30}, uint64(len(body))) // MQTT's remaining length is this varint
	pk = append(pk, body...)
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_, _ = c.Write(pk)
	}
}

// subscriptions returns the filters subscribed to, in order, and whether
// each was granted.
func (f *fakeBroker) subscriptions() []fakeSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs)
}

func (f *fakeBroker) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}

// serve reads packets from c until it fails or an action ends it.
func (f *fakeBroker) serve(c net.Conn) error {
	r := bufio.NewReader(c)
	for {
		header, err := r.ReadByte()
		if err != nil {
			return err
		}
		n, err := binary.ReadUvarint(r) // MQTT's remaining length is this varint
		if err != nil {
			return err
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		var reply []byte
		switch header >> 4 {
		case 1: // CONNECT
			if f.noConnack {
				continue
			}
			reply = []byte{0x20, 2, 0, f.connack}
		case 3: // PUBLISH
			p, err := parsePublish(header, body)
			if err != nil {
				return err
			}
			f.mu.Lock()
			f.publish = append(f.publish, p)
			f.mu.Unlock()
			switch f.onPublish(p) {
			case fakeHang:
				return errors.New("hung up on purpose")
			case fakeAck:
				if p.QoS == 1 {
					reply = []byte{0x40, 2, byte(p.ID >> 8), byte(p.ID)}
				}
			}
		case 8: // SUBSCRIBE: grant QoS 1 to each filter, but refuse
			reply = []byte{0x90, 0, body[0], body[1]}
			for rest := body[2:]; len(rest) >= 2; {
				l := int(binary.BigEndian.Uint16(rest))
				filter := string(rest[2:min(len(rest), 2+l)])
				rest = rest[min(len(rest), 2+l+1):]
				refuse := f.refuse.Load()
				granted := refuse == nil || *refuse != filter
				f.mu.Lock()
				f.subs = append(f.subs, fakeSub{filter, granted})
				f.mu.Unlock()
				code := byte(1)
				if !granted {
					code = 0x80
				}
				reply = append(reply, code)
			}
			reply[1] = byte(len(reply) - 2)
		case 10: // UNSUBSCRIBE
			reply = []byte{0xb0, 2, body[0], body[1]}
		case 12: // PINGREQ
			reply = []byte{0xd0, 0}
		case 14: // DISCONNECT
			return nil
		}
		if reply != nil && !f.mute.Load() {
			if _, err := c.Write(reply); err != nil {
				return err
			}
		}
	}
}

func parsePublish(header byte, body []byte) (fakePublish, error) {
	if len(body) < 2 {
		return fakePublish{}, errors.New("short PUBLISH")
	}
	l := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+l {
		return fakePublish{}, errors.New("short PUBLISH topic")
	}
	p := fakePublish{Topic: string(body[2 : 2+l]), QoS: header >> 1 & 3, Dup: header&8 != 0}
	if p.QoS > 0 {
		if len(body) < 2+l+2 {
			return fakePublish{}, errors.New("PUBLISH without id")
		}
		p.ID = binary.BigEndian.Uint16(body[2+l:])
	}
	return p, nil
}
