// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co

package mqtt

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// packetReader is a client's buffered reader of packets, which holds its
// buffer only while there are bytes in it (patch 35).
//
// A client's reader spends nearly all its time waiting for the next packet,
// and a bufio.Reader holds its buffer (ClientNetReadBufferSize bytes) all
// along: 600 bytes for every idle device. When the connection has a
// syscall.RawConn (TCP), packetReader waits for the socket to be readable
// without a buffer, takes one from a pool to read into, and gives it back
// once it has handed out every byte in it. It makes the same system calls as
// the net package's own reads (a read that finds nothing, the wait, the read
// that finds the data). Other connections (TLS, WebSocket, pipes) have no
// RawConn: they read through conn into a buffer kept for their lifetime, as
// bufio.Reader did.
//
// It is used by the client's reading goroutine only (and the goroutines it
// waits for: onFreshStack).
type packetReader struct {
	conn net.Conn
	raw  syscall.RawConn // conn's, or nil
	size int             // of the buffer
	buf  *[]byte         // nil while empty, when raw is not nil
	r, w int             // buf[r:w] is still to be read
	err  error           // from the read that filled buf, returned once it is read

	// readRaw's call of raw.Read: readFD (p.readFromFD, made once, so that
	// a read allocates nothing), what it reads into (nil: buf), and what it
	// read.
	readFD func(fd uintptr) bool
	rawDst []byte
	rawN   int
	rawErr error
}

// readBuffers holds the buffers of clients waiting for their next packet
// (*[]byte). A sync.Pool: the runtime bounds it (it empties at garbage
// collections); it holds at most as many as are being read at once.
var readBuffers sync.Pool

// maxEmptyReads bounds the reads that return nothing and no error in a row
// (bufio.Reader's bound): past it, io.ErrNoProgress.
const maxEmptyReads = 100

// newPacketReader returns a reader of conn's packets through a buffer of size bytes.
func newPacketReader(conn net.Conn, size int) *packetReader {
	p := &packetReader{conn: conn, size: max(size, 16)}
	if sc, ok := conn.(syscall.Conn); ok && rawReads {
		if raw, err := sc.SyscallConn(); err == nil {
			p.raw = raw
			p.readFD = p.readFromFD
		}
	}
	return p
}

// Buffered is how many bytes can be read without reading the connection.
func (p *packetReader) Buffered() int { return p.w - p.r }

// ReadByte reads one byte.
func (p *packetReader) ReadByte() (byte, error) {
	if p.r == p.w {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	c := (*p.buf)[p.r]
	p.r++
	p.releaseIfEmpty()
	return c, nil
}

// Read reads up to len(b) bytes: what is buffered, else what one read of the
// connection gives (straight into b when b is at least a buffer long).
func (p *packetReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if p.r == p.w {
		if err := p.takeErr(); err != nil {
			return 0, err
		}
		if len(b) >= p.size {
			return p.readConn(b)
		}
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(b, (*p.buf)[p.r:p.w])
	p.r += n
	p.releaseIfEmpty()
	return n, nil
}

// takeErr returns, and forgets, the error of the read that filled the buffer.
func (p *packetReader) takeErr() error {
	err := p.err
	p.err = nil
	return err
}

// fill reads the connection into an empty buffer: at least one byte, or an error.
func (p *packetReader) fill() error {
	if err := p.takeErr(); err != nil {
		return err
	}
	p.r, p.w = 0, 0
	for i := 0; i < maxEmptyReads; i++ {
		var n int
		var err error
		if p.raw != nil {
			n, err = p.readRaw(nil)
		} else {
			if p.buf == nil {
				b := make([]byte, p.size)
				p.buf = &b
			}
			n, err = p.conn.Read(*p.buf)
		}
		p.w = n
		if n > 0 {
			p.err = err // after the bytes read, as bufio.Reader does
			return nil
		}
		if err != nil {
			p.releaseIfEmpty()
			return err
		}
	}
	return io.ErrNoProgress
}

// readConn reads the connection straight into b (not the buffer).
func (p *packetReader) readConn(b []byte) (int, error) {
	if p.raw != nil {
		return p.readRaw(b)
	}
	return p.conn.Read(b)
}

// readRaw waits for the connection to be readable and reads it into dst,
// or into a buffer from readBuffers when dst is nil (p.buf, which it holds
// only once there are bytes to read). The end of the stream is io.EOF.
func (p *packetReader) readRaw(dst []byte) (int, error) {
	p.rawDst, p.rawN, p.rawErr = dst, 0, nil
	err := p.raw.Read(p.readFD)
	n, readErr := p.rawN, p.rawErr
	p.rawDst, p.rawErr = nil, nil
	switch {
	case err != nil:
		return 0, err // a deadline, or the connection closed
	case readErr != nil:
		return 0, &net.OpError{Op: "read", Net: p.conn.LocalAddr().Network(), Source: p.conn.LocalAddr(), Addr: p.conn.RemoteAddr(), Err: os.NewSyscallError("read", readErr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readFromFD is readRaw's callback: one read of fd into p.rawDst (or
// p.buf), false when there is nothing to read yet (raw.Read then waits for
// the socket to be readable, and calls it again).
func (p *packetReader) readFromFD(fd uintptr) bool {
	into := p.rawDst
	if into == nil {
		if p.buf == nil {
			p.buf = getReadBuffer(p.size)
		}
		into = *p.buf
	}
	var n int
	var err error
	for {
		n, err = readFD(fd, into)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EAGAIN) {
		p.releaseIfEmpty() // wait without it
		return false
	}
	if err != nil {
		n = 0
	}
	p.rawN, p.rawErr = n, err
	return true
}

// releaseIfEmpty gives the buffer back once everything in it is read, when
// the connection has a RawConn to wait on without it.
func (p *packetReader) releaseIfEmpty() {
	if p.raw != nil && p.r == p.w && p.buf != nil {
		readBuffers.Put(p.buf)
		p.buf = nil
		p.r, p.w = 0, 0
	}
}

// getReadBuffer is a buffer of size bytes, from readBuffers if it has one
// at least that large.
func getReadBuffer(size int) *[]byte {
	if b, ok := readBuffers.Get().(*[]byte); ok && cap(*b) >= size {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size)
	return &b
}
