package history_test

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hub drives a Recorder as broker.Store does: a bbolt file, Open in the
// transaction that opens it, Write and Written per sync.
type hub struct {
	t     testing.TB
	path  string
	db    *bbolt.DB
	r     *history.Recorder
	clock *hubtest.Clock
	fault error // a Write transaction fails with it
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newHub(t testing.TB, dir string, c *hubtest.Clock, cfg history.Config) *hub {
	t.Helper()
	cfg.Now = c.Now
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	h := &hub{t: t, path: filepath.Join(dir, "hub.db"), clock: c}
	db, err := bbolt.Open(h.path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	h.db = db
	h.r = history.New(cfg)
	if err := db.Update(h.r.Open); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.close() })
	return h
}

// settle waits for the recorder to apply what was added.
func (h *hub) settle() {
	h.t.Helper()
	hubtest.Eventually(h.t, 10*time.Second, func() bool { return h.r.Stats().Queued == 0 }, "the recorder applies the queue")
}

// sync waits for the recorder to apply what was added, and writes.
func (h *hub) sync() error {
	h.t.Helper()
	h.settle()
	err := h.db.Update(func(tx *bbolt.Tx) error {
		if err := h.r.Write(tx); err != nil {
			return err
		}
		return h.fault
	})
	h.r.Written(err == nil)
	return err
}

func (h *hub) mustSync() {
	h.t.Helper()
	if err := h.sync(); err != nil {
		h.t.Fatal(err)
	}
}

// close stops the recorder and writes what it left, as the hub's shutdown.
func (h *hub) close() {
	if h.db == nil {
		return
	}
	_ = h.r.Close()
	if h.r.Pending() {
		err := h.db.Update(h.r.Write)
		h.r.Written(err == nil)
	}
	_ = h.db.Close()
	h.db = nil
}

var errFull = errors.New("disk full")
