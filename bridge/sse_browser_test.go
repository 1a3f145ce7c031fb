package bridge_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestEventSourceComesBackAfterALimit: Chromium's EventSource, refused
// because its address holds as many streams as allowed, is told why
// ("event: close") and reconnects by itself once a stream is free, then
// gets messages; a 429 would have closed it for good.
func TestEventSourceComesBackAfterALimit(t *testing.T) {
	h := startRealHub(t, bridge.Config{MaxSessionsPerAddress: 1, SSERefusedRetry: 300 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("/events", routes(h.Hub))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>sse</title><script>
window.seen = {closes: [], messages: []};
</script>`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close) // after the streams' cleanups: Close waits for them

	holder := hubtest.DialSSE(t, srv.URL+"/events", nil) // the one stream 127.0.0.1 may have
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 1 }, "the first stream did not open")

	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate(srv.URL+"/"))
	hubtest.Eval[bool](t, b, `(() => {
		const es = new EventSource("/events?filter=page/%23");
		window.es = es;
		es.addEventListener("close", (e) => seen.closes.push(JSON.parse(e.data)));
		es.onmessage = (e) => seen.messages.push(JSON.parse(e.data));
		return true;
	})()`)
	b.WaitJS(t, hubtest.Timeout, `seen.closes.length > 0`, `[es.readyState, JSON.stringify(seen)]`)
	if reason := hubtest.Eval[string](t, b, `seen.closes[0].reason`); reason != "try again later" {
		t.Fatalf("the refused page was told %q", reason)
	}

	holder.Close()
	// The page is back when a message published now reaches it (until then
	// its attempts may still meet the old stream, or wait for their retry).
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		h.publish(t, "page/x", `"back"`)
		return hubtest.Eval[bool](t, b, `seen.messages.some((m) => m[0] === "page/x" && m[1] === "back")`)
	}, "the page did not come back: readyState %v, %s", hubtest.Eval[any](t, b, `es.readyState`), hubtest.Eval[string](t, b, `JSON.stringify(seen)`))
	hubtest.Eval[bool](t, b, `(es.close(), true)`)
}
