//go:build linux

package bridge

import (
	"errors"
	"fmt"
	"syscall"
)

// epoller is an epoll instance of the hub's own, beside the runtime's, that
// watches parked readers' sockets for input (idlereaders.go), and a pipe
// that wakes its waiter for Close. A socket is added for one report
// (EPOLLONESHOT) and removed when it is reported or its session resumes.
type epoller struct {
	epfd         int
	wakeR, wakeW int // the pipe: a byte written to wakeW ends wait
}

// epollReadable is what makes a parked reader resume: input, the peer's
// half-close; errors and hang-ups are always reported.
const epollReadable = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// wakeToken is the pipe's token; a socket's is never 0.
const wakeToken = 0

func newEpoller() (*epoller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	e := &epoller{epfd: epfd, wakeR: p[0], wakeW: p[1]}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setEpollToken(&ev, wakeToken)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, e.wakeR, &ev); err != nil {
		e.close()
		return nil, fmt.Errorf("epoll_ctl of the wake pipe: %w", err)
	}
	return e, nil
}

func setEpollToken(ev *syscall.EpollEvent, token uint64) {
	ev.Fd, ev.Pad = int32(uint32(token)), int32(uint32(token>>32))
}

func epollToken(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// add watches raw's socket for one report of input, under token. The
// descriptor is used under raw.Control, which keeps it open meanwhile: a
// descriptor closed before is refused, never confused with a new one of
// the same number.
func (e *epoller) add(raw syscall.RawConn, token uint64) error {
	var ctlErr error
	err := raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: epollReadable}
		setEpollToken(&ev, token)
		ctlErr = syscall.EpollCtl(e.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	return errors.Join(err, ctlErr)
}

// remove stops watching raw's socket. A socket already closed left the
// set when it closed: nothing to do.
func (e *epoller) remove(raw syscall.RawConn) {
	_ = raw.Control(func(fd uintptr) {
		var ev syscall.EpollEvent // ignored, but older kernels want one
		_ = syscall.EpollCtl(e.epfd, syscall.EPOLL_CTL_DEL, int(fd), &ev)
	})
}

// wait blocks until some socket is reported or the pipe is written to, and
// appends the reported sockets' tokens to tokens; woken says the pipe was.
// It blocks its thread in epoll_wait (the runtime gives its P to others).
func (e *epoller) wait(events []epollEvent, tokens []uint64) (_ []uint64, woken bool, err error) {
	n, err := syscall.EpollWait(e.epfd, events, -1)
	if err == syscall.EINTR {
		return tokens, false, nil
	}
	if err != nil {
		return tokens, false, fmt.Errorf("epoll_wait: %w", err)
	}
	for i := range events[:n] {
		if t := epollToken(&events[i]); t != wakeToken {
			tokens = append(tokens, t)
		} else {
			woken = true
		}
	}
	return tokens, woken, nil
}

// wake makes wait return, at once or on its next call.
func (e *epoller) wake() { _, _ = syscall.Write(e.wakeW, []byte{1}) }

// close releases the descriptors; wait must have returned for good.
func (e *epoller) close() {
	_ = syscall.Close(e.wakeR)
	_ = syscall.Close(e.wakeW)
	_ = syscall.Close(e.epfd)
}

// epollEvent is what epoll_wait reports.
type epollEvent = syscall.EpollEvent
