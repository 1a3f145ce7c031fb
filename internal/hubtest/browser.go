package hubtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser is a headless Debian Chromium driven over the DevTools protocol
// (chromedp). It never downloads a browser: it uses the chromium that
// `make test` installs.
type Browser struct {
	Ctx context.Context // for chromedp.Do and chromedp.Run

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// browserStarts is how many times NewBrowser tries to start Chromium.
const browserStarts = 3

// NewBrowser starts Chromium for the test and stops it when the test ends.
// What pages write to the console is collected (see Console).
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	path := RequireCommand(t, "chromium", "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
		// The machine's network is closed: nothing may try to reach out.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-pings", true),
	)
	// The first action starts the browser, whose life is tied to the context
	// of that action: it must be ctx itself, not one with a deadline. A
	// Chromium that crashes as it starts (seen now and then on a busy
	// machine, before any page is loaded) is started again, at most
	// browserStarts times in all; what the test then does is not retried.
	var (
		ctx, allocCtx       context.Context
		cancel, cancelAlloc context.CancelFunc
	)
	for attempt := 1; ; attempt++ {
		// A profile of its own each time: a crashed Chromium may leave its lock behind.
		allocCtx, cancelAlloc = chromedp.NewExecAllocator(context.Background(), append(opts, chromedp.UserDataDir(t.TempDir()))...)
		ctx, cancel = chromedp.NewContext(allocCtx)
		err := chromedp.Do(ctx)
		if err == nil {
			break
		}
		cancel()
		cancelAlloc()
		if attempt == browserStarts {
			t.Fatalf("starting Chromium (%s), %d times: %v", path, attempt, err)
		}
		t.Logf("Chromium did not start (attempt %d of %d), starting it again: %v", attempt, browserStarts, err)
	}
	b := &Browser{Ctx: ctx}
	messages := chromedp.Console(ctx)
	collected := make(chan struct{})
	go func() { // ends when the browser's context does
		defer close(collected)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-collected
	})
	return b
}

// Errors returns the console messages of type error and the uncaught
// exceptions seen so far, formatted as DevTools shows them.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m))
		}
	}
	return out
}

// Do runs chromedp steps with a deadline.
func (b *Browser) Do(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Eval evaluates a JavaScript expression in the page and returns its value.
func Eval[T any](t testing.TB, b *Browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("browser: evaluating %.60q: %v", js, err)
	}
	return v
}

// WaitJS polls a JavaScript condition until it is true, failing the test
// after timeout with the value of describe (another expression) then.
func (b *Browser) WaitJS(t testing.TB, timeout time.Duration, cond, describe string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !Eval[bool](t, b, "Boolean("+cond+")") {
		if time.Now().After(deadline) {
			t.Fatalf("after %v the page never had %s; %s = %v", timeout, cond, describe, Eval[any](t, b, describe))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
