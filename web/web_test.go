package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 400 && ct != "application/json" {
		t.Errorf("GET %s: error with Content-Type %q, want application/json", url, ct)
	}
	return resp.StatusCode, string(body)
}

func TestReadyzReportsWhatIsNotReady(t *testing.T) {
	b, err := broker.Start(broker.Config{Logger: quiet}) // no listener: only the hub's Bus
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	hub, err := bridge.New(b, bridge.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close(context.Background())

	var upstreamUp atomic.Bool
	srv := httptest.NewServer(New(hub, Config{Logger: quiet, Checks: []Check{
		{Name: "listeners", Ready: func() error { return nil }},
		{Name: "upstream", Ready: func() error {
			if !upstreamUp.Load() {
				return errors.New("connecting to mqtt://broker:1883")
			}
			return nil
		}},
	}}))
	defer srv.Close()

	status, body := get(t, srv.URL+"/readyz")
	if status != http.StatusServiceUnavailable || body != `{"failing":{"upstream":"connecting to mqtt://broker:1883"},"status":"not ready"}`+"\n" {
		t.Fatalf("/readyz = %d %s", status, body)
	}
	upstreamUp.Store(true)
	if status, body := get(t, srv.URL+"/readyz"); status != http.StatusOK || !strings.Contains(body, `"ready"`) {
		t.Fatalf("/readyz once everything is up = %d %s", status, body)
	}
	if status, _ := get(t, srv.URL+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz = %d", status)
	}
}

func TestPanicBecomesJSON500(t *testing.T) {
	srv := httptest.NewServer(recoverer(quiet)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})))
	defer srv.Close()
	status, body := get(t, srv.URL)
	if status != http.StatusInternalServerError || !strings.Contains(body, `"code":"internal"`) {
		t.Fatalf("panicking handler answered %d %s", status, body)
	}
}

func TestMountBase(t *testing.T) {
	for path, want := range map[string]string{
		"/ws":                 "",
		"/ws/":                "",
		"/ws/nodes/bridge/0":  "nodes/bridge/0",
		"/ws/nodes/bridge/0/": "nodes/bridge/0",
		"/ws/a//b":            "a//b", // refused later by the hub: empty level
	} {
		if got := mountBase(path, "/ws"); got != want {
			t.Errorf("mountBase(%q) = %q, want %q", path, got, want)
		}
	}
}
