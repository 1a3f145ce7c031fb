package hubtest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// NewTab opens another tab in the same browser (same profile, so it shares
// workers and storage with b's tab) and closes it when the test ends. Its
// console is collected like b's: see Errors.
func (b *Browser) NewTab(t testing.TB) *Browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.Ctx)
	tab := &Browser{Ctx: ctx}
	// As for the first tab, the first action opens it, tied to ctx itself.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	messages := chromedp.Console(ctx)
	collected := make(chan struct{})
	go func() { // ends when the tab's context does
		defer close(collected)
		for m, err := range messages {
			if err != nil {
				return
			}
			tab.mu.Lock()
			tab.console = append(tab.console, m)
			tab.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-collected
	})
	return tab
}
