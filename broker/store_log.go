package broker

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
)

// The event log is kept in the bucket events, in chunks of consecutive
// records (see appendChunk), each keyed by its first record's sequence
// number (big-endian): a write puts a chunk per logChunkBytes of its
// records, and deletes whole chunks from the front, where a key per record
// (the log bucket of earlier versions) made it put and delete one per
// message. The first chunk kept is rewritten without its records past the
// bounds, so that the file holds the log within its bounds, as before.
var bucketEvents = []byte("events") // first seq → chunk of records

// logChunkBytes is about how many bytes of records a chunk of the log
// holds: a few pages, so that bbolt finds room for it among the pages the
// log's deleted chunks freed.
const logChunkBytes = 16 << 10

// writeLog appends the batch's records (encoded in enc) to the log, after
// deleting (from the front, in order) those past the log's bounds.
func (s *Store) writeLog(tx *bbolt.Tx, b *batch, enc *encodedRecords) error {
	oldestKept := uint64(0)
	if b.seq > uint64(s.cfg.LogEntries) {
		oldestKept = b.seq - uint64(s.cfg.LogEntries) + 1
	}
	cutoff := time.Now().Add(-s.cfg.LogMaxAge)
	kept := func(seq uint64, at time.Time) bool { return seq >= oldestKept && at.After(cutoff) }
	events := tx.Bucket(bucketEvents)
	if b.logTruncated || (len(b.log) > 0 && b.log[0].Seq <= oldestKept) {
		// All of the file's log goes: the pending records replace it (with
		// no gap between them and what the file had, if some were dropped).
		if err := clearBucket(tx, bucketEvents); err != nil {
			return err
		}
		events = tx.Bucket(bucketEvents)
	} else if err := trimLog(events, oldestKept, kept, enc); err != nil {
		return err
	}
	events.FillPercent = 1 // appended in key order: full pages, half as many
	var parts [][]byte
	first, size := uint64(0), 0
	put := func() error {
		if len(parts) == 0 {
			return nil
		}
		err := events.Put(enc.seqKey(first), enc.chunkOf(parts))
		parts, size = parts[:0], 0
		return err
	}
	for i, r := range b.log {
		if !kept(r.Seq, r.Time) {
			continue
		}
		if len(parts) == 0 {
			first = r.Seq
		}
		parts = append(parts, enc.logRecord(i))
		if size += len(enc.logRecord(i)); size >= logChunkBytes {
			if err := put(); err != nil {
				return err
			}
		}
	}
	return put()
}

// trimLog deletes the log's records that kept says go, from its front up
// to the first that stays: the chunks whose last record goes, and the
// records before it of the chunk that holds it, which is put again without
// them. Every record numbered below oldestKept goes.
func trimLog(events *bbolt.Bucket, oldestKept uint64, kept func(uint64, time.Time) bool, enc *encodedRecords) error {
	// The keys first, then their deletions: deleting at a cursor and going
	// back to the front walks every leaf emptied so far, each time (bbolt
	// removes them only at commit). A key stays valid for the transaction.
	var gone [][]byte // at most the file's log
	var rest []byte   // the first chunk that stays, without its records that go
	var restKey uint64
	c := events.Cursor()
	for k, v := c.First(); k != nil; {
		next, nextV := c.Next()
		if next != nil && binary.BigEndian.Uint64(next) <= oldestKept {
			// Its records are numbered below the next chunk's first: no
			// need to read them.
			gone = append(gone, k)
			k, v = next, nextV
			continue
		}
		// A chunk or a record that cannot be read goes, as one past the
		// bounds does: the log only serves resuming clients, and a write
		// that failed on it would fail at every sync. (Opening the file
		// reads the whole log and refuses a damaged one.)
		var encs [][]byte
		var r storedRecord
		if eachInChunk(v, func(enc []byte) error { encs = append(encs, enc); return nil }) != nil ||
			json.Unmarshal(encs[len(encs)-1], &r) != nil || !kept(r.Seq, r.Time) {
			gone = append(gone, k)
			k, v = next, nextV
			continue
		}
		for i, e := range encs {
			if json.Unmarshal(e, &r) == nil && kept(r.Seq, r.Time) {
				if i > 0 {
					gone = append(gone, k)
					rest, restKey = enc.chunkOf(encs[i:]), r.Seq // a copy: v is the file's
				}
				break
			}
		}
		break
	}
	for _, k := range gone {
		if err := events.Delete(k); err != nil {
			return err
		}
	}
	if rest != nil {
		return events.Put(enc.seqKey(restKey), rest)
	}
	return nil
}

// readLog reads the event log, oldest first, into out.
func readLog(events *bbolt.Bucket, out *[]bridge.Record) error {
	return events.ForEach(func(k, v []byte) error {
		if _, err := readChunk(v, out, false); err != nil {
			return fmt.Errorf("the event log at %x: %w", k, err)
		}
		return nil
	})
}

// loadLog reads the event log into the restored state; a file of earlier
// versions has it moved to the layout of this one, if it is kept (keep:
// the file was closed cleanly).
func (s *Store) loadLog(tx *bbolt.Tx, keep bool) error {
	r := &s.restored
	old := tx.Bucket(bucketLog)
	if old == nil {
		return readLog(tx.Bucket(bucketEvents), &r.Log)
	}
	// Written by an earlier version, which knows nothing of the events
	// bucket: what it holds (if a later version ran before) is older.
	if err := clearBucket(tx, bucketEvents); err != nil {
		return err
	}
	if keep {
		if err := readRecords(old, &r.Log); err != nil {
			return err
		}
		if err := putLog(tx.Bucket(bucketEvents), r.Log); err != nil {
			return err
		}
	}
	return tx.DeleteBucket(bucketLog)
}

// putLog writes records, the log of an earlier version's file, in chunks.
func putLog(events *bbolt.Bucket, records []bridge.Record) error {
	enc := newEncodedRecords(records)
	for start := 0; start < len(records); start += 64 {
		end := min(start+64, len(records))
		if err := events.Put(enc.seqKey(records[start].Seq), enc.chunkOf(enc.enc[start:end])); err != nil {
			return err
		}
	}
	return nil
}
