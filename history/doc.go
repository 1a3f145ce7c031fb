// Package history keeps long history of numeric and text series: raw
// points for a recent window, and 5-minute and hourly rollups (min, max,
// mean, count, last) much longer, in the hub's bbolt file, within a disk
// budget, and answers a time range at a resolution chosen from it.
//
// It imports the standard library, bbolt and topics only: cmd/hub feeds it
// the hub's messages (Add) and makes it a part of package broker's Store,
// whose batched sync writes it (Open, Pending, Write, Written).
//
// # Concurrency contract
//
// (Written by the package's builder: who holds which lock, for how long.)
package history
