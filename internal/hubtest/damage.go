package hubtest

import (
	"math/rand/v2"
	"os"
	"testing"

	"go.etcd.io/bbolt"
)

// DamageStore writes n bytes of noise into a bbolt file, starting at the
// first page from the middle of the file on that a tree uses (a branch or a
// leaf: never a free page, whose damage no check could see), as a failing
// disk or a stray write would. The noise is the same on every run; which
// page it lands on depends on how the store's writes were batched.
func DamageStore(t testing.TB, path string, n int) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil) // read-write: a read-only DB does not load its freelist
	if err != nil {
		t.Fatal(err)
	}
	pageSize := db.Info().PageSize
	target := -1
	_ = db.View(func(tx *bbolt.Tx) error {
		pages := int(tx.Size()) / pageSize
		for id := pages / 2; id < pages && target < 0; id++ {
			if p, err := tx.Page(id); err == nil && p != nil && (p.Type == "leaf" || p.Type == "branch") {
				target = id
			}
		}
		return nil
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if target < 0 {
		t.Fatalf("%s: no page in use in the second half of the file to damage", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	noise := make([]byte, n)
	rng := rand.New(rand.NewPCG(14, 14))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	if _, err := f.WriteAt(noise, int64(target)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

// DamageBucket writes noise over the first page of the top-level bucket
// top's tree that holds data of its own (the root of its first nested
// bucket with pages, depth first, else its own root), as a failing disk
// would in that bucket only: the rest of the file stays sound.
func DamageBucket(t testing.TB, path string, top []byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var page int64
	var find func(b *bbolt.Bucket)
	find = func(b *bbolt.Bucket) {
		_ = b.ForEachBucket(func(k []byte) error {
			if page == 0 {
				find(b.Bucket(k))
			}
			return nil
		})
		if page == 0 && b.RootPage() != 0 && b.Stats().LeafInuse > 0 {
			page = int64(b.RootPage())
		}
	}
	_ = db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(top); b != nil {
			find(b)
		}
		return nil
	})
	pageSize := int64(db.Info().PageSize)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if page == 0 {
		t.Fatalf("%s: the bucket %s has no page of its own to damage", path, top)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff}, page*pageSize); err != nil {
		t.Fatal(err)
	}
}
