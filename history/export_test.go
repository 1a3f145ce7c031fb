package history_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestSlowExportDoesNotStallWrites: an export whose reader is slow (a
// client on a slow link) must not hold a read transaction open while it
// waits, or a write that grows the file (bbolt remaps it, which waits for
// every read transaction to end) stalls the store's sync until the
// client is done.
func TestSlowExportDoesNotStallWrites(t *testing.T) {
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{})
	const points = 20000
	for i := range points {
		ts := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		c.Set(ts)
		h.r.Add("s", fmt.Appendf(nil, "%d", i), ts, false)
	}
	h.mustSync()

	paused, release := make(chan struct{}), make(chan struct{})
	type result struct {
		n   int
		err error
	}
	exported := make(chan result, 1)
	go func() {
		n := 0
		q := history.Query{Topic: "s", From: t0, To: c.Now().Add(time.Second), Resolution: history.Raw}
		_, err := h.r.Export(context.Background(), q, func(p history.Point) error {
			if p.Last != float64(n) {
				return fmt.Errorf("point %d: %+v", n, p)
			}
			n++
			if n == 1 {
				close(paused) // the client stops reading for a while
				<-release
			}
			return nil
		})
		exported <- result{n, err}
	}()
	<-paused

	// A write that grows the file well past its mapping.
	wrote := make(chan error, 1)
	go func() {
		wrote <- h.db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("grow"))
			if err != nil {
				return err
			}
			v := make([]byte, 64<<10)
			for i := range 256 { // 16 MiB
				if err := b.Put(fmt.Appendf(nil, "%08d", i), v); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	var stalled bool
	select {
	case err := <-wrote:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(20 * time.Second):
		stalled = true
	}
	close(release)
	if stalled {
		if err := <-wrote; err != nil {
			t.Error(err)
		}
		t.Error("a write that grows the file waited for a paused export")
	}
	if res := <-exported; res.err != nil || res.n != points {
		t.Errorf("export: %d points, %v; want %d", res.n, res.err, points)
	}
}
