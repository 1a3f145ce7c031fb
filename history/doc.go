// Package history keeps long history of numeric and text series: raw
// points for a recent window, and 5-minute and hourly rollups (min, max,
// mean, count, last) much longer, in the hub's bbolt file, within a disk
// budget, and answers a time range at a resolution chosen from it.
//
// It imports the standard library, bbolt and topics only: cmd/hub feeds it
// the hub's messages (Add) and makes it a part of package broker's Store,
// whose batched sync writes it (Open, Pending, Write, Written).
//
// The layout in the file (one bucket per level and period, dropped whole
// by retention and the budget) is described in layout.go. What reaches the
// disk when: raw points in batches per series, 30 s after the first (or
// at 256 points); a 5-minute or hourly rollup once it closes (a later
// point of the series, or the clock past its end), merged with the file's
// for the same bucket; text changes and new series at the next Write.
// Close closes the open rollups so that the store's last sync writes them.
// A crash loses at most 30 s of raw points and the open rollups. Queries
// merge what is in memory, so readers see every point at once.
//
// # Memory
//
// A series takes about 1 KB (TestManyTopics measures 0.9 KB with a topic
// of 24 bytes), plus its topic and field (a field's path is at most 256
// bytes), plus its raw points waiting for a write: 16 bytes each, in two
// arrays kept for reuse as large as its largest batch (at most rawBatch,
// 256 points, unless writes fail: 4 to 8 KB for a series at 10 messages a
// second, 1 KB at one a second). So at most MaxSeries series (10,000:
// about 10 MB plus their names, and up to 80 MB more were every series
// that busy), and a topic refused past MaxSeries costs nothing. What
// waits for a write is bounded by MaxPending too, and the queue between
// Add and the recorder by QueueLen (its payloads are the hub's own,
// shared).
//
// # Concurrency contract
//
// Add is called under the hub's fan-out lock. It takes the queue's own
// lock for one append to a bounded slice (no allocation once the slice has
// grown) and nudges the recorder's goroutine with a non-blocking send: it
// never waits for the recorder's main lock, a write or a read. A full
// queue drops the message and counts it (Stats.Dropped).
//
// The recorder's goroutine (started by Open, stopped and waited for by
// Close) takes the queue whole, parses each payload and aggregates under
// the recorder's lock, released every 256 messages.
//
// Write runs in the store's sync transaction: it holds the recorder's
// lock only to move what is pending to the write (O(series with news)),
// and writes outside it. Written settles the write under the lock.
//
// Query, Export, Series and Stats may be called from any goroutine. Query
// and Export hold the lock to copy what of one series is in memory (its
// pending points, open and closed rollups), then read in a bbolt read
// transaction without it. Export reads 4096 points per read transaction
// and calls its fn between them, never inside one: a slow client must not
// hold a read transaction open, as bbolt's remap (a write that grows the
// file) waits for every read transaction to end.
// Series holds the lock for a walk of the series (at most MaxSeries).
package history
