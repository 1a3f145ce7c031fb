package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/cputime"
)

// BenchmarkStoreSync30k times one sync of 30,000 records, spread over 100
// or 10,000 topics, on a store already at its bounds (full event log, full
// histories): the steady state of a busy hub.
//
//	go test ./broker -run '^$' -bench StoreSync -benchtime 5x
func BenchmarkStoreSync30k(b *testing.B) {
	for _, topics := range []int{100, 10000} {
		b.Run(fmt.Sprintf("topics=%d", topics), func(b *testing.B) { benchmarkSync(b, 30000, topics) })
	}
}

func benchmarkSync(b *testing.B, records, topics int) {
	s := openTestStore(b, b.TempDir(), StoreConfig{})
	defer s.Close()
	seq := uint64(0)
	fill := func() {
		at := time.Now()
		for i := range records {
			seq++
			s.Record(bridge.Record{Seq: seq, Topic: fmt.Sprintf("bench/%d/temp", i%topics), Payload: json.RawMessage(`[21.5,"°C",{"n":12345}]`), Time: at})
		}
	}
	fill()
	s.sync()
	fill()
	s.sync()
	b.ResetTimer()
	var took time.Duration
	for range b.N {
		b.StopTimer()
		fill()
		b.StartTimer()
		start := time.Now()
		s.sync()
		took += time.Since(start)
	}
	if err := s.Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "ms/sync")
}

// BenchmarkStoreRecord is the cost of Record, which the hub calls under its
// lock for every message: 10,000 topics, at the bounds (BenchmarkStoreRecordEvicting: 20,000, each record evicts a topic).
func BenchmarkStoreRecord(b *testing.B) { benchmarkRecord(b, 10000) }

func BenchmarkStoreRecordEvicting(b *testing.B) { benchmarkRecord(b, 20000) }

func benchmarkRecord(b *testing.B, n int) {
	s := openTestStore(b, b.TempDir(), StoreConfig{})
	defer s.Close()
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench/%d/temp", i)
	}
	payload := json.RawMessage(`[21.5,"°C"]`)
	at := time.Now()
	b.ReportAllocs()
	for i := range b.N {
		s.Record(bridge.Record{Seq: uint64(i + 1), Topic: topics[i%len(topics)], Payload: payload, Time: at})
		if i%100_000 == 99_999 {
			b.StopTimer()
			s.sync()
			b.StartTimer()
		}
	}
}

// BenchmarkStoreStats is the cost of Stats (a metrics scrape), which holds
// the lock Record needs, with much pending (a full disk): 16,384 log
// records and 10,000 topics of 12 samples. It does not grow with them.
func BenchmarkStoreStats(b *testing.B) {
	s := openTestStore(b, b.TempDir(), StoreConfig{})
	defer s.Close()
	at := time.Now()
	for i := range 120_000 {
		s.Record(bridge.Record{Seq: uint64(i + 1), Topic: fmt.Sprintf("bench/%d/temp", i%10_000), Payload: json.RawMessage(`[21.5,"°C"]`), Time: at})
	}
	b.ResetTimer()
	for range b.N {
		if st := s.Stats(); st.Pending == 0 {
			b.Fatal("nothing pending")
		}
	}
	b.StopTimer() // not Close's write
}

// BenchmarkStoreIngest is what the store costs per message of the hub's
// ingest benchmark (hubbench ingest, --data): 2,000 topics, 100-byte
// payloads, a sync every rate records (a second's worth), from a store
// already at its bounds. ns/op is Record plus its share of the syncs, on
// one goroutine: the CPU each message costs, whatever the neighbours do.
//
//	go test ./broker -run '^$' -bench StoreIngest -benchtime 200000x
func BenchmarkStoreIngest(b *testing.B) {
	for _, rate := range []int{10000, 40000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchmarkIngest(b, 2000, rate) })
	}
}

func benchmarkIngest(b *testing.B, topics, perSync int) {
	s := openTestStore(b, b.TempDir(), StoreConfig{})
	defer s.Close()
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("bench/dev%d/data", i)
	}
	payload := json.RawMessage(fmt.Sprintf(`{"s":1,"t":1764000000000000000,"p":"%s"}`, strings.Repeat("x", 60)))
	seq := uint64(0)
	record := func() {
		seq++
		s.Record(bridge.Record{Seq: seq, Topic: names[seq%uint64(topics)], Payload: payload, Time: time.Now()})
		if seq%uint64(perSync) == 0 {
			s.sync()
		}
	}
	for range 3 * bridge.DefaultHistoryLength * topics { // full histories, a full log
		record()
	}
	b.ReportAllocs()
	b.ResetTimer()
	pages := pageBytes(s)
	cpu := cputime.Process(b)
	for range b.N {
		record()
	}
	cpu = cputime.Process(b) - cpu
	b.StopTimer()
	pages = pageBytes(s) - pages
	if err := s.Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	// The pages each sync dirtied, and so wrote: what the disk sees.
	b.ReportMetric(float64(pages)/float64(b.N)*float64(perSync)/(1<<20), "MB-written/sync")
	if fi, err := os.Stat(s.path); err == nil { // free pages too: what the layout leaves unused
		b.ReportMetric(float64(fi.Size())/(1<<20), "MB-file")
	}
}

// pageBytes is the bytes of the pages the store's writes have dirtied, and
// so written, since it opened.
func pageBytes(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageAlloc()
}
