// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co

package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tcpPair is the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return server, client
}

// A TCP client's reader has a buffer only while there are bytes in it: none
// once it has read everything, none while it waits for more; it reads
// every byte in order, a body larger than its buffer straight into the
// body, and the end of the stream as io.EOF.
func TestPacketReaderHoldsABufferOnlyWhileThereAreBytes(t *testing.T) {
	if !rawReads {
		t.Skip("no RawConn reads here: every connection keeps its buffer")
	}
	server, client := tcpPair(t)
	p := newPacketReader(server, 16)
	require.NotNil(t, p.raw, "a TCP connection has a RawConn")
	require.Nil(t, p.buf)

	// Nothing to read: the wait ends at the deadline, without a buffer.
	require.NoError(t, server.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err := p.ReadByte()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Nil(t, p.buf, "no buffer while waiting")
	require.NoError(t, server.SetReadDeadline(time.Time{}))

	// A header, a short body, a body longer than the buffer.
	big := bytes.Repeat([]byte("0123456789"), 10)
	stream := append([]byte{0x30, 3, 'a', 'b', 'c', 0x30, byte(len(big))}, big...)
	_, err = client.Write(stream)
	require.NoError(t, err)
	got := make([]byte, 0, len(stream))
	for len(got) < 7 {
		b, err := p.ReadByte()
		require.NoError(t, err)
		got = append(got, b)
	}
	body := make([]byte, len(big))
	_, err = io.ReadFull(p, body)
	require.NoError(t, err)
	require.Equal(t, stream, append(got, body...))
	require.Nil(t, p.buf, "no buffer once everything is read")
	require.Equal(t, 0, p.Buffered())

	require.NoError(t, client.Close())
	_, err = p.ReadByte()
	require.ErrorIs(t, err, io.EOF)
	require.Nil(t, p.buf)
}

// Bytes that come after a read that emptied the socket, while the client
// handles what it read, are read at the next read, without waiting for
// more to come. They would not be if that read waited before it read (to
// save the read(2) that finds nothing before each wait): raw.Read clears
// the readiness the runtime's poller recorded for them (PATCHES.md 35).
func TestPacketReaderReadsWhatCameWhileItWasNotReading(t *testing.T) {
	if !rawReads {
		t.Skip("no RawConn reads here")
	}
	server, client := tcpPair(t)
	p := newPacketReader(server, 16)
	for i := byte(0); i < 20; i++ {
		_, err := client.Write([]byte{i})
		require.NoError(t, err)
		b, err := p.ReadByte() // the socket is empty after this read
		require.NoError(t, err)
		require.Equal(t, i, b)

		_, err = client.Write([]byte{i | 0x80})
		require.NoError(t, err)
		// Not a synchronisation: the byte must be read however long this
		// is. The reader goes idle, as a client's does while it handles a
		// packet, and the poller records the byte as readable meanwhile.
		time.Sleep(time.Millisecond)
		require.NoError(t, server.SetReadDeadline(time.Now().Add(5*time.Second)))
		b, err = p.ReadByte()
		require.NoError(t, err, "the byte that came while the reader was not reading")
		require.Equal(t, i|0x80, b)
	}
}

// A connection without a RawConn (net.Pipe, TLS, WebSocket) is read
// through its Read, into a buffer kept for its lifetime.
func TestPacketReaderWithoutRawConn(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	p := newPacketReader(server, 16)
	require.Nil(t, p.raw)
	go func() {
		_, _ = client.Write([]byte{1, 2, 3})
		_ = client.Close()
	}()
	for want := byte(1); want <= 3; want++ {
		b, err := p.ReadByte()
		require.NoError(t, err)
		require.Equal(t, want, b)
	}
	require.NotNil(t, p.buf, "kept")
	_, err := p.ReadByte()
	require.True(t, errors.Is(err, io.EOF), err)
}

// Reading a packet's bytes from TCP allocates nothing (a busy device sends
// tens of packets a second): the buffer comes from the pool, and the
// callback of raw.Read is made once, with the reader.
func TestPacketReaderReadsWithoutAllocating(t *testing.T) {
	server, client := tcpPair(t)
	p := newPacketReader(server, 16)
	packet := []byte{0xc0, 0} // PINGREQ
	got := make([]byte, len(packet))
	read := func() {
		if _, err := client.Write(packet); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p, got); err != nil {
			t.Fatal(err)
		}
	}
	read() // the pool's first buffer
	// Under one per read: the count is the process's, other tests' goroutines
	// may allocate meanwhile (a closure per read made three).
	require.Less(t, testing.AllocsPerRun(100, read), 1.0)
	require.Equal(t, packet, got)
}
