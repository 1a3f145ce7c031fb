package broker

import "go.etcd.io/bbolt"

// A StorePart is more state kept in the store's file and written in the
// store's sync transaction, beside the broker's and the hub's: the
// history's rollups (history.Recorder) are one. The store calls its methods
// from its own goroutine (Open from OpenStore's), one at a time.
type StorePart interface {
	// Open creates the part's bucket and reads what it keeps, in the
	// transaction that opens the store; an error fails OpenStore. A part
	// whose bucket is damaged is not opened, nor called after.
	Open(tx *bbolt.Tx) error
	// Pending says whether the part has something to Write. It is called
	// before each interval's sync (a sync runs when the store's own changes
	// or a part's are pending), and must not block.
	Pending() bool
	// Write writes what changed since the last Write that committed, in
	// the store's sync transaction. An error fails the whole transaction,
	// which is tried again at the next interval.
	Write(tx *bbolt.Tx) error
	// Bucket names the top-level bucket the part keeps its state in: a
	// file whose damage lies only there opens without the part (see
	// Store.PartErr), and DropPart removes it.
	Bucket() []byte
	// Written says whether the transaction of the last Write committed.
	// It is called once after each Write, false when the transaction
	// failed (a full disk, or another part's error).
	Written(ok bool)
}

// partsPending says whether one of the parts has something to write.
func (s *Store) partsPending() bool {
	for _, p := range s.parts {
		if p.Pending() {
			return true
		}
	}
	return false
}

// openParts opens each part in tx, the store's opening transaction, but
// those whose bucket is damaged (partsOff).
func (s *Store) openParts(tx *bbolt.Tx) error {
	for _, p := range s.cfg.Parts {
		if s.PartErr(p) != nil {
			continue
		}
		if err := p.Open(tx); err != nil {
			return err
		}
		s.parts = append(s.parts, p)
	}
	return nil
}

// writeParts has each part write in tx, the store's sync transaction,
// and returns the parts whose Write was called, for writtenParts.
func (s *Store) writeParts(tx *bbolt.Tx) (wrote []StorePart, err error) {
	for _, p := range s.parts {
		wrote = append(wrote, p)
		if err := p.Write(tx); err != nil {
			return wrote, err
		}
	}
	return wrote, nil
}

// writtenParts tells the parts that wrote whether their transaction
// committed.
func writtenParts(wrote []StorePart, ok bool) {
	for _, p := range wrote {
		p.Written(ok)
	}
}
