package broker

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"go.etcd.io/bbolt"
)

// countPart is a StorePart of the tests' own: it keeps a counter in a
// bucket of its own, and logs the store's calls.
type countPart struct {
	mu      sync.Mutex
	calls   []string // the store's calls, in order (a test's few dozen)
	opened  uint64   // the counter found at Open
	count   uint64   // the counter now
	written uint64   // what the last committed Write wrote
	writing uint64   // what the Write under way wrote
}

var countBucket = []byte("test-count")

func (p *countPart) log(call string) {
	p.calls = append(p.calls, call)
}

func (p *countPart) Open(tx *bbolt.Tx) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log("open")
	b, err := tx.CreateBucketIfNotExists(countBucket)
	if err != nil {
		return err
	}
	if v := b.Get([]byte("n")); v != nil {
		if _, err := fmt.Sscan(string(v), &p.opened); err != nil {
			return err
		}
	}
	p.count, p.written = p.opened, p.opened
	return nil
}

func (p *countPart) Bucket() []byte { return countBucket }

func (p *countPart) add() {
	p.mu.Lock()
	p.count++
	p.mu.Unlock()
}

func (p *countPart) Pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count != p.written
}

func (p *countPart) Write(tx *bbolt.Tx) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log("write")
	p.writing = p.count
	return tx.Bucket(countBucket).Put([]byte("n"), fmt.Append(nil, p.writing))
}

func (p *countPart) Written(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log(fmt.Sprintf("written %v", ok))
	if ok {
		p.written = p.writing
	}
}

func (p *countPart) state() (calls []string, opened, written uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls), p.opened, p.written
}

// TestStorePartsWrittenInSync: a part is opened with the store, written in
// the store's sync when it alone has something pending, told when its write
// failed (and written again at the next sync), written by Close's last
// sync, and finds what it wrote in the next run.
func TestStorePartsWrittenInSync(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	part := &countPart{}
	s := openTestStore(t, dir, StoreConfig{Parts: []StorePart{part}, writeFault: func() error {
		if failing.Load() {
			return syscall.ENOSPC
		}
		return nil
	}})
	s.sync() // nothing pending: no transaction
	if calls, _, _ := part.state(); !slices.Equal(calls, []string{"open"}) {
		t.Fatalf("calls after open and an idle sync: %q, want [open]", calls)
	}

	part.add()
	part.add()
	s.sync() // the part alone is pending: the store syncs for it
	if calls, _, written := part.state(); written != 2 || !slices.Equal(calls, []string{"open", "write", "written true"}) {
		t.Fatalf("after a sync: written %d, calls %q; want 2, [open write written true]", written, calls)
	}
	if st := s.Stats(); st.Syncs != 1 {
		t.Fatalf("Syncs %d, want 1", st.Syncs)
	}

	failing.Store(true)
	part.add()
	s.sync()
	// The fault came before the part's turn: a part that did not write is
	// not told (TestStorePartErrors has one that wrote told false).
	if calls, _, written := part.state(); written != 2 || len(calls) != 3 {
		t.Fatalf("after a sync that failed before the part's turn: written %d, calls %q; want 2, no more calls", written, calls)
	}
	if s.Err() == nil {
		t.Fatal("Err nil after a failed write")
	}
	failing.Store(false)
	part.add() // 4, written by Close's last sync
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if calls, _, written := part.state(); written != 4 || calls[len(calls)-1] != "written true" {
		t.Fatalf("after Close: written %d, calls %q; want 4, ending in written true", written, calls)
	}

	again := &countPart{}
	s2 := openTestStore(t, dir, StoreConfig{Parts: []StorePart{again}})
	defer s2.Close()
	if _, opened, _ := again.state(); opened != 4 {
		t.Fatalf("the next run's part opened with %d, want 4", opened)
	}
}

// failingPart fails its Open or its Write.
type failingPart struct {
	countPart
	openErr, writeErr error
}

func (p *failingPart) Open(tx *bbolt.Tx) error {
	if p.openErr != nil {
		return p.openErr
	}
	return p.countPart.Open(tx)
}

func (p *failingPart) Write(tx *bbolt.Tx) error {
	if err := p.countPart.Write(tx); err != nil {
		return err
	}
	return p.writeErr
}

// TestStorePartErrors: a part whose Open fails fails OpenStore; one whose
// Write fails fails the whole transaction (the store's own changes stay
// pending), and every part that wrote in it is told.
func TestStorePartErrors(t *testing.T) {
	broken := errors.New("broken part")
	if _, err := OpenStore(t.TempDir(), StoreConfig{Parts: []StorePart{&failingPart{openErr: broken}}}); !errors.Is(err, broken) {
		t.Fatalf("OpenStore with a part whose Open fails: %v, want it wrapped", err)
	}

	good, bad := &countPart{}, &failingPart{writeErr: broken}
	s := openTestStore(t, t.TempDir(), StoreConfig{Parts: []StorePart{good, bad}})
	good.add()
	s.mqttChanged("retained/a", []byte("{}"))
	s.sync()
	if calls, _, written := good.state(); written != 0 || calls[len(calls)-1] != "written false" {
		t.Fatalf("a part in a transaction another part failed: written %d, calls %q", written, calls)
	}
	if st := s.Stats(); st.SyncFailures != 1 || st.Pending != 1 {
		t.Fatalf("after a part's failed Write: %+v, want 1 failure and the broker's change still pending", st)
	}
	bad.writeErr = nil
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, written := good.state(); written != 1 {
		t.Fatalf("after Close: written %d, want 1", written)
	}
}
