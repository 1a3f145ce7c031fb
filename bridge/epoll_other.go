//go:build !linux

package bridge

import (
	"errors"
	"syscall"
)

// epoller is Linux's epoll (epoll_linux.go); elsewhere there is none, and
// every WebSocket session keeps its reader's goroutine.
type epoller struct{}

func newEpoller() (*epoller, error) {
	return nil, errors.New("parked readers need epoll (Linux)")
}

func (*epoller) add(syscall.RawConn, uint64) error { return errors.ErrUnsupported }
func (*epoller) remove(syscall.RawConn)            {}
func (*epoller) wake()                             {}
func (*epoller) close()                            {}

func (*epoller) wait([]epollEvent, []uint64) ([]uint64, bool, error) {
	return nil, false, errors.ErrUnsupported
}

// epollEvent stands for syscall.EpollEvent, which only Linux has.
type epollEvent struct{}
