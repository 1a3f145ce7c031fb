package history_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// heapBytes is the heap in use after a collection.
func heapBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestManyTopics: 100,000 distinct topics with MaxSeries 10,000: the
// series stop at MaxSeries, the others are counted, and the memory stops
// growing with them: a refused topic costs nothing once applied. The
// memory a series takes (topics of 24 bytes, one value each, written) is
// within seriesBytes, the bound the package documentation states.
func TestManyTopics(t *testing.T) {
	const maxSeries, topics = 10000, 100000
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{MaxSeries: maxSeries})
	c.Set(t0.Add(topics * time.Millisecond)) // no time ahead of the clock
	add := func(from, to int) {
		for i := from; i < to; i++ {
			ts := t0.Add(time.Duration(i) * time.Millisecond)
			h.r.Add(fmt.Sprintf("abuse/device%08d/v", i), []byte(`{"t":21.5}`), ts, false)
			if i%10000 == 9999 {
				h.settle() // within the queue's bound
			}
		}
		h.mustSync()
	}
	before := heapBytes()
	add(0, maxSeries)
	full := heapBytes()
	add(maxSeries, topics)
	after := heapBytes()
	st := h.r.Stats()
	if st.Series != maxSeries || st.SeriesRefused != topics-maxSeries {
		t.Fatalf("stats %+v: want %d series, %d refused", st, maxSeries, topics-maxSeries)
	}
	perSeries := (full - before) / maxSeries
	refused := (after - full) / (topics - maxSeries)
	t.Logf("heap: %d bytes per series; %d more per refused topic (%d in all)", perSeries, refused, after-full)
	if perSeries > seriesBytes {
		t.Errorf("a series takes %d bytes, more than the %d stated", perSeries, seriesBytes)
	}
	if after-full > 1<<20 {
		t.Errorf("90,000 refused topics took %d bytes more, want none (under 1 MiB of noise)", after-full)
	}
}

// seriesBytes is the memory a series takes, as the package documentation
// states it (besides its topic and field, and its points pending).
const seriesBytes = 1024
