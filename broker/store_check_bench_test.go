package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
)

// BenchmarkStoreCheck times tx.Check, which OpenStore runs on every page
// of the file, on a file of about 100 MB (MB-used).
//
//	go test ./broker -run '^$' -bench StoreCheck -benchtime 3x
func BenchmarkStoreCheck(b *testing.B) {
	dir := b.TempDir()
	s := openTestStore(b, dir, StoreConfig{MaxTopics: 100_000, HistoryLength: 200, HistoryBytes: 1 << 30})
	payload := json.RawMessage(`"` + strings.Repeat("x", 300) + `"`)
	at := time.Now()
	seq := uint64(0)
	for range 9 {
		for range 10_000 {
			seq++
			s.Record(bridge.Record{Seq: seq, Topic: fmt.Sprintf("check/%d", seq%2000), Payload: payload, Time: at})
		}
		s.sync()
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	info, _ := os.Stat(filepath.Join(dir, "hub.db"))
	db, err := bbolt.Open(filepath.Join(dir, "hub.db"), 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var used int64
	b.ResetTimer()
	for range b.N {
		_ = db.View(func(tx *bbolt.Tx) error {
			used = tx.Size()
			for err := range tx.Check() {
				b.Fatal(err)
			}
			return nil
		})
	}
	b.ReportMetric(float64(used)/1e6, "MB-used")
	b.ReportMetric(float64(info.Size())/1e6, "MB-file")
}
