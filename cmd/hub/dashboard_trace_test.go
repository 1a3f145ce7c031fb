package main

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// traceCategories are what a DevTools "Performance" recording holds: tasks
// of the main thread, what ran in them (script, style, layout, observers,
// messages), and JavaScript samples.
var traceCategories = []string{
	"toplevel", "devtools.timeline", "disabled-by-default-devtools.timeline",
	"v8.execute", "blink", "blink.user_timing", "disabled-by-default-devtools.timeline.frame",
}

// pageTrace records a DevTools trace of the page until stop, which writes
// it to a file that DevTools (Performance → Load profile) or
// ui.perfetto.dev opens.
type pageTrace struct {
	mu     sync.Mutex
	events []jsonv2.Value
	done   chan struct{}
	cancel context.CancelFunc
}

// startTrace starts recording a trace of the page of ctx.
func startTrace(ctx context.Context, t testing.TB) *pageTrace {
	t.Helper()
	lctx, cancel := context.WithCancel(ctx)
	p := &pageTrace{done: make(chan struct{}), cancel: cancel}
	var once sync.Once
	if err := chromedp.Listen(lctx, func(ev any) {
		switch ev := ev.(type) {
		case *tracing.EventDataCollected:
			p.mu.Lock()
			p.events = append(p.events, ev.Value...)
			p.mu.Unlock()
		case *tracing.EventTracingComplete:
			once.Do(func() { close(p.done) })
		}
	}); err != nil {
		t.Fatalf("listening for the trace: %v", err)
	}
	params := tracing.StartParams{
		TransferMode: tracing.StartTransferModeReportEvents,
		TraceConfig:  &tracing.TraceConfig{IncludedCategories: traceCategories, EnableSampling: true},
	}
	if _, err := chromedp.Call(ctx, tracing.Start, params); err != nil {
		cancel()
		t.Fatalf("starting the trace: %v", err)
	}
	return p
}

// stop ends the recording and writes the trace to name.
func (p *pageTrace) stop(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	defer p.cancel()
	if _, err := chromedp.Call(ctx, tracing.End, cdp.Empty{}); err != nil {
		t.Fatalf("ending the trace: %v", err)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatalf("the trace never completed: %v", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []byte(`{"traceEvents":[`)
	for i, ev := range p.events {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, ev...)
	}
	out = append(out, "]}\n"...)
	if err := os.WriteFile(name, out, 0o644); err != nil {
		t.Fatalf("writing the trace: %v", err)
	}
	t.Logf("trace of the window (%d events) in %s", len(p.events), name)
}
