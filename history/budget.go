package history

import (
	"encoding/binary"

	"go.etcd.io/bbolt"
)

// The disk budget counts what the history occupies in the file: the pages
// allocated to its buckets, not the bytes in use in them. Keys of many
// series arrive interleaved (each series' next chunk or rollup goes after
// its last), so pages split in the middle and end half to a third full:
// counting the bytes in use let the file grow two to three times past
// MaxBytes.
//
// hist/sizes holds, per period, the bytes bbolt allocated to its bucket
// when last measured (Bucket.Stats) and the estimated bytes written since
// (entryCost). An estimate counts estimateRatio times: pages split in
// waves (a write that adds 45 KB of entries may allocate nothing, the
// next one 250 KB), so no steady ratio holds between writes. A period is
// measured once a write does not touch it (its estimate drops to 0: the
// count is exact), and while written, whenever its estimate passes
// measureBytes, so that the part estimated stays small; headroom covers
// what one write allocates past its estimate.

// estimateRatio is how many bytes an estimated byte counts: the pages of a
// period written by many series end a third to half full.
const estimateRatio = 4

// headroom is the part of the budget kept free for what is estimated
// (the pages a write splits count only at the next measure): 1/32 of it,
// at least 64 KiB, eight times what a period may have estimated
// (measureBytes, counted estimateRatio times).
func (r *Recorder) headroom() int64 { return max(r.cfg.MaxBytes/32, 64<<10) }

// periodSize is a hist/sizes value.
type periodSize struct {
	measured  int64 // bytes allocated to the bucket when last measured
	estimated int64 // bytes written since, estimated
}

// decodeSize reads a hist/sizes value (an 8-byte one is an estimate
// only); ok is false for a damaged one.
func decodeSize(v []byte) (ps periodSize, ok bool) {
	switch len(v) {
	case 8:
		ps.estimated = int64(binary.BigEndian.Uint64(v))
	case 16:
		ps.measured = int64(binary.BigEndian.Uint64(v))
		ps.estimated = int64(binary.BigEndian.Uint64(v[8:]))
	default:
		return ps, false
	}
	return ps, true
}

func (ps periodSize) encode() []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(ps.measured))
	return binary.BigEndian.AppendUint64(v, uint64(ps.estimated))
}

// cost is what the period counts in the budget.
func (ps periodSize) cost() int64 { return ps.measured + ps.estimated*estimateRatio }

// measure measures the period bucket b, committed before this
// transaction, of which this transaction wrote the estimated bytes
// written.
func measure(b *bbolt.Bucket, written int64) periodSize {
	st := b.Stats() // the pages as committed: this transaction's are not spilled yet
	return periodSize{measured: int64(st.BranchAlloc + st.LeafAlloc + st.InlineBucketInuse), estimated: written}
}

// measureBytes is the estimate past which a period still written is
// measured again: 1/512 of the budget, at least 16 KiB.
func (r *Recorder) measureBytes() int64 { return max(r.cfg.MaxBytes/512, 16<<10) }
