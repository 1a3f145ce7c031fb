package linger_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/linger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCloseDeliversTheLastWordsToASendingPeer: a server closes while its
// peer is still sending; with a lingering close, the peer reads what was
// written last and then an end of stream, never a reset.
func TestCloseDeliversTheLastWordsToASendingPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for run := range 20 {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = client.SetDeadline(time.Now().Add(10 * time.Second))
		sent := make(chan struct{})
		go func() { // the peer keeps sending until the connection ends
			defer close(sent)
			buf := make([]byte, 32<<10)
			for {
				if _, err := client.Write(buf); err != nil {
					return
				}
			}
		}()
		if _, err := server.Write([]byte("bye")); err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- linger.Close(server, 5*time.Second) }()

		got, err := io.ReadAll(client) // EOF after "bye": the FIN of the half-close
		if err != nil || string(got) != "bye" {
			t.Fatalf("run %d: the peer read %q, %v; want \"bye\" and the end of the stream", run+1, got, err)
		}
		_ = client.Close() // the server's drain sees the end, and closes
		<-sent
		if err := <-closed; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("run %d: close: %v", run+1, err)
		}
	}
}

// TestCloseIsBounded: a peer that never closes holds a lingering close for
// the timeout, no longer.
func TestCloseIsBounded(t *testing.T) {
	_, server := hubtest.TCPPair(t) // the client stays open, never closing, until the test ends
	start := time.Now()
	_ = linger.Close(server, 200*time.Millisecond)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("returned after %v, before the peer closed or the timeout", d)
	}
	if _, err := server.Write([]byte("x")); err == nil {
		t.Fatal("the connection is still open after Close")
	}
}
