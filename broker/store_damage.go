package broker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// ErrPartDamaged is returned by Store.PartErr (wrapped, naming the file and
// the part's bucket) for a part whose bucket is damaged while the rest of
// the file is sound: the store opened without it.
var ErrPartDamaged = errors.New("a part of the store file is damaged")

// damagedBucket is a top-level bucket found damaged: its name, and the
// first damage found in it.
type damagedBucket struct {
	name []byte
	err  error
}

// damagedBuckets is called when the check of the whole file found damage.
// It checks the file's top-level buckets one by one: when every bucket but
// parts' (the top-level buckets named parts) is sound, and some of those
// are not, it returns those; otherwise ok is false: the damage is
// elsewhere.
//
// Writing to such a file is safe: a write copies the pages it changes, and
// never reads or frees the pages of a bucket it does not touch (the damaged
// bucket's header is copied as it is), so bbolt never reuses them.
func (s *Store) damagedBuckets(tx *bbolt.Tx, parts [][]byte) (damaged []damagedBucket, ok bool) {
	var names [][]byte
	err := s.guard(func() error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			names = append(names, bytes.Clone(name))
			return nil
		})
	})
	if err != nil {
		return nil, false // the root's own pages
	}
	for _, name := range names {
		err := s.bucketDamage(tx, name)
		switch {
		case err == nil:
		case slices.ContainsFunc(parts, func(p []byte) bool { return bytes.Equal(p, name) }):
			damaged = append(damaged, damagedBucket{name, err})
		default:
			return nil, false
		}
	}
	return damaged, len(damaged) > 0
}

// bucketDamage is the first damage bbolt's check finds in the pages of the
// top-level bucket name, from its root page, or nil.
func (s *Store) bucketDamage(tx *bbolt.Tx, name []byte) error {
	var root uint64
	if err := s.guard(func() error { root = uint64(tx.Bucket(name).RootPage()); return nil }); err != nil {
		return err
	}
	if root == 0 {
		return nil // inline: in the root's page, which was read
	}
	var first error
	for err := range tx.Check(bbolt.WithPageId(root)) { // to its end: the checker's goroutine ends with it
		if first == nil {
			first = err
		}
	}
	return first
}

// partDamagedError says that the part's bucket cannot be read, the rest of
// the file can.
func (s *Store) partDamagedError(d damagedBucket) error {
	return fmt.Errorf("%w: the bucket %s of %s cannot be read (%s); the rest of the file is sound", ErrPartDamaged, d.name, s.path,
		strings.TrimPrefix(d.err.Error(), "panic: "))
}

// PartErr says why part p was not opened with the store (an error wrapping
// ErrPartDamaged that names the file and says what to do), or nil when it
// was.
func (s *Store) PartErr(p StorePart) error {
	for _, d := range s.partsOff {
		if d.part == p {
			return d.err
		}
	}
	return nil
}

// partOff is a part the store opened without.
type partOff struct {
	part StorePart
	err  error
}

// DropPart removes the top-level bucket name (a damaged part's) from the
// store in dir, keeping the rest: it copies every other bucket to a new
// file, keeps the old one as hub.db.damaged (with the time, if one is
// there already) and puts the copy in its place. The hub must be stopped
// (ErrStoreLocked otherwise). A damaged page outside the bucket fails it
// (ErrStoreDamaged), leaving the file as it was.
func DropPart(dir string, name []byte) (kept string, err error) {
	path := filepath.Join(dir, "hub.db")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no store in %s: %w", dir, err)
	}
	src := &Store{path: path}
	from, err := src.openDB(&bbolt.Options{ReadOnly: true, Timeout: time.Second}, "stop the hub first")
	if err != nil {
		return "", err
	}
	tmp := path + ".new"
	_ = os.Remove(tmp) // a copy an earlier run left
	to, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		_ = from.Close()
		return "", fmt.Errorf("create %s: %w", tmp, err)
	}
	err = src.guard(func() error { return copyBuckets(from, to, name) })
	err = errors.Join(err, to.Close(), from.Close())
	if err == nil {
		err = checkFile(tmp) // the copy is sound before it takes the file's place
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	kept = path + ".damaged"
	if _, err := os.Stat(kept); err == nil {
		kept = fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.Rename(path, kept); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("keep the damaged file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return kept, fmt.Errorf("put the copy in place (the damaged file is %s, the copy %s): %w", kept, tmp, err)
	}
	return kept, nil
}

// copyBuckets copies every top-level bucket of from but skip to to, one
// transaction per bucket.
func copyBuckets(from, to *bbolt.DB, skip []byte) error {
	return from.View(func(src *bbolt.Tx) error {
		return src.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if bytes.Equal(name, skip) {
				return nil
			}
			return to.Update(func(dst *bbolt.Tx) error {
				nb, err := dst.CreateBucket(name)
				if err != nil {
					return err
				}
				return copyBucket(b, nb)
			})
		})
	})
}

// copyBucket copies src's keys and nested buckets into dst.
func copyBucket(src, dst *bbolt.Bucket) error {
	if err := dst.SetSequence(src.Sequence()); err != nil {
		return err
	}
	return src.ForEach(func(k, v []byte) error {
		if v != nil {
			return dst.Put(k, v)
		}
		nb, err := dst.CreateBucket(k)
		if err != nil {
			return err
		}
		return copyBucket(src.Bucket(k), nb)
	})
}
