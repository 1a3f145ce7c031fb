package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// centrifugoPublisher publishes through Centrifugo's HTTP API
// (POST /api/publish with X-API-Key), as an application's backend does:
// the pacing loop hands each message to one of Workers goroutines, each
// with its own keep-alive connection, so that one slow request does not
// hold up the rest. A message the workers cannot take yet (all busy, the
// hand-over queue full) waits for the next tick, and counts as behind if
// the run ends first.
type centrifugoPublisher struct {
	url     string // http://host:port/api/publish
	key     string
	workers int
	client  *http.Client

	failed   atomic.Uint64 // requests that failed or were answered with an error
	firstErr atomic.Value  // string: the first failure
}

// centrifugoPublishTimeout bounds one publish request.
const centrifugoPublishTimeout = 10 * time.Second

func newCentrifugoPublisher(addr, key string, workers int) (*centrifugoPublisher, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	workers = max(workers, 1)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, a string) (net.Conn, error) {
			return dialLoopback(ctx, a)
		},
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &centrifugoPublisher{
		url: "http://" + addr + "/api/publish", key: key, workers: workers,
		client: &http.Client{Transport: tr, Timeout: centrifugoPublishTimeout},
	}, nil
}

// appendCentrifugoPublish appends the body of a publish request carrying
// a bench payload as the publication's data.
func appendCentrifugoPublish(dst []byte, seq uint64, sentNs int64, size int) []byte {
	dst = append(dst, `{"channel":"`+benchChannel+`","data":`...)
	dst = appendBenchPayload(dst, seq, sentNs, size)
	return append(dst, '}')
}

func (p *centrifugoPublisher) run(ctx context.Context, _ string, rate float64, size int, start, end, windowFrom, windowTo time.Time) (pubStats, error) {
	// Bounded: one body waiting per worker; the pacing loop does not block on it.
	jobs := make(chan []byte, p.workers)
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for body := range jobs {
				p.post(ctx, body)
			}
		})
	}
	emit := func(seq uint64, sentNs int64) (bool, error) {
		select {
		case jobs <- appendCentrifugoPublish(make([]byte, 0, size+64), seq, sentNs, size):
			return true, nil
		default:
			return false, nil
		}
	}
	st, err := pace(ctx, rate, start, end, windowFrom, windowTo, nil, emit, func() error { return nil })
	close(jobs)
	wg.Wait()
	return st, err
}

// post sends one publish request; a failure is counted, not returned: the
// messages it carried are missing at every subscriber, which is what the
// run measures.
func (p *centrifugoPublisher) post(ctx context.Context, body []byte) {
	fail := func(err error) {
		p.failed.Add(1)
		p.firstErr.CompareAndSwap(nil, err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		fail(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.key)
	resp, err := p.client.Do(req)
	if err != nil {
		fail(fmt.Errorf("centrifugo publish: %w", err))
		return
	}
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case err != nil:
		fail(fmt.Errorf("centrifugo publish: read the reply: %w", err))
	case resp.StatusCode != http.StatusOK:
		fail(fmt.Errorf("centrifugo publish: %s: %.200s", resp.Status, reply))
	case bytes.Contains(reply, []byte(`"error"`)):
		fail(fmt.Errorf("centrifugo publish: %.200s", reply))
	}
}

// failures is how many publish requests failed, and the first reason.
func (p *centrifugoPublisher) failures() (uint64, string) {
	s, _ := p.firstErr.Load().(string)
	return p.failed.Load(), s
}

func (p *centrifugoPublisher) ping() error { return nil }
func (p *centrifugoPublisher) close()      { p.client.CloseIdleConnections() }
