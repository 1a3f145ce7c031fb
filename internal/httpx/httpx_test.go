package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHost(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1",
		"[::1]:443":      "::1",
		"[fe80::1%lo]:1": "fe80::1%lo",
		"192.0.2.7":      "192.0.2.7", // no port: as it is
		"::1":            "::1",
		"":               "",
	} {
		if got := Host(addr); got != want {
			t.Errorf("Host(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, http.StatusTooManyRequests, "limit", `at most 256 filters, "a" and <b>`)
	if rec.Code != http.StatusTooManyRequests {
		t.Errorf("status %d", rec.Code)
	}
	if ct, nosniff := rec.Header().Get("Content-Type"), rec.Header().Get("X-Content-Type-Options"); ct != "application/json" || nosniff != "nosniff" {
		t.Errorf("Content-Type %q, X-Content-Type-Options %q", ct, nosniff)
	}
	const want = `{"error":{"code":"limit","message":"at most 256 filters, \"a\" and \u003cb\u003e"}}` + "\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body %s, want %s", got, want)
	}
}
