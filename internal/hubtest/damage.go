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
