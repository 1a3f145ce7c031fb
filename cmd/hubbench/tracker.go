package main

import "math/bits"

// seqTracker records which sequence numbers one subscriber received, in a
// bitmap bounded by the highest sequence number the run can publish. It is
// used by one goroutine at a time (the subscriber's reader, then the run once
// that reader has ended).
type seqTracker struct {
	bits       []uint64
	maxSeq     uint64
	last       uint64 // the last sequence number received
	received   uint64
	duplicates uint64
	reordered  uint64 // arrived after a higher sequence number
	outOfRange uint64 // 0 or above maxSeq
}

func newSeqTracker(maxSeq uint64) *seqTracker {
	return &seqTracker{maxSeq: maxSeq}
}

// add records sequence number s.
func (t *seqTracker) add(s uint64) {
	if s == 0 || s > t.maxSeq {
		t.outOfRange++
		return
	}
	w, b := s/64, s%64
	if w >= uint64(len(t.bits)) {
		n := max(w+1, uint64(2*len(t.bits)), 16)
		n = min(n, t.maxSeq/64+1)
		t.bits = append(t.bits, make([]uint64, n-uint64(len(t.bits)))...)
	}
	if t.bits[w]&(1<<b) != 0 {
		t.duplicates++
		return
	}
	t.bits[w] |= 1 << b
	t.received++
	if s < t.last {
		t.reordered++
	} else {
		t.last = s
	}
}

// countRange is how many distinct sequence numbers in [lo, hi] were received.
func (t *seqTracker) countRange(lo, hi uint64) uint64 {
	var n uint64
	if lo == 0 {
		lo = 1
	}
	for s := lo; s <= hi; {
		w := s / 64
		if w >= uint64(len(t.bits)) {
			break
		}
		word := t.bits[w] >> (s % 64)
		span := 64 - s%64
		if rem := hi - s + 1; rem < span {
			word &= 1<<rem - 1
			span = rem
		}
		n += uint64(bits.OnesCount64(word))
		s += span
	}
	return n
}
