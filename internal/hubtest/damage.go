package hubtest

import (
	"math/rand/v2"
	"os"
	"testing"

	"go.etcd.io/bbolt"
)

// DamageStore writes n bytes of noise into a bbolt file's pages in use,
// from the middle on (page-aligned: the start of a page), as a failing disk
// or a stray write would. The noise is the same on every run.
func DamageStore(t testing.TB, path string, n int) {
	t.Helper()
	var used int64
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bbolt.Tx) error { used = tx.Size(); return nil })
	_ = db.Close()
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
	page := int64(os.Getpagesize())
	if _, err := f.WriteAt(noise, used/2/page*page); err != nil {
		t.Fatal(err)
	}
}
