package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// The admin view (/admin) of a whole hub, in headless Chromium, with the
// mosquitto clients a person would use to check what it did.

// mosquittoRetained is what `mosquitto_sub --retained-only` gets for filter
// from the broker at addr: "topic payload" lines, sorted. args are more
// arguments (credentials).
func mosquittoRetained(t *testing.T, addr, filter string, args ...string) []string {
	t.Helper()
	sub := hubtest.RequireCommand(t, "mosquitto_sub", "mosquitto-clients")
	host, port, _ := net.SplitHostPort(addr)
	args = append([]string{"-h", host, "-p", port, "-t", filter, "--retained-only", "-v", "-W", "1"}, args...)
	out, err := exec.CommandContext(t.Context(), sub, args...).Output()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 27) { // 27: -W ran out, its normal end here
		t.Fatalf("mosquitto_sub --retained-only: %v", err)
	}
	lines := strings.FieldsFunc(string(out), func(r rune) bool { return r == '\n' })
	slices.Sort(lines)
	return lines
}

// mosquittoPublishRetained publishes each "topic payload" line retained
// with mosquitto_pub.
func mosquittoPublishRetained(t *testing.T, addr string, lines []string) {
	t.Helper()
	pub := hubtest.RequireCommand(t, "mosquitto_pub", "mosquitto-clients")
	host, port, _ := net.SplitHostPort(addr)
	for _, line := range lines {
		topic, payload, _ := strings.Cut(line, " ")
		if out, err := exec.CommandContext(t.Context(), pub, "-h", host, "-p", port, "-q", "1", "-r", "-t", topic, "-m", payload).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
	}
}

// openAdmin loads the admin view in b and waits until its lists came.
func openAdmin(t *testing.T, b *hubtest.Browser, h *runningHub) {
	t.Helper()
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/admin"))
	b.WaitJS(t, hubtest.Timeout, `window.motehubAdmin !== undefined && ["mqtt-clients", "sessions", "retained"].every(id => document.getElementById(id).dataset.loaded === "true")`,
		`document.body.textContent.slice(0, 300)`)
}

// TestAdminViewDisconnectsAndClears: the admin view lists a connected
// mosquitto_sub and disconnects it; the retained-message manager clears
// ret/# after a dry run that lists what would go, and its undo brings the
// messages back, as mosquitto_sub --retained-only sees.
func TestAdminViewDisconnectsAndClears(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	sub := hubtest.RequireCommand(t, "mosquitto_sub", "mosquitto-clients")
	h := startHub(t)
	host, port, _ := net.SplitHostPort(h.MQTT)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	watcher := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", "5", "-d", "-i", "watcher", "-t", "alerts/#")
	var out hubtest.LogBuffer
	watcher.Stdout, watcher.Stderr = &out, &out
	if err := watcher.Start(); err != nil {
		t.Fatal(err)
	}
	retained := []string{"ret/a 1", "ret/b {\"on\":true}", "ret/c/d three"}
	mosquittoPublishRetained(t, h.MQTT, append(retained, "keep/x kept"))

	b := hubtest.NewBrowser(t)
	openAdmin(t, b, h)
	row := `document.querySelector('#mqtt-clients tr[data-id="watcher"]')`
	b.WaitJS(t, hubtest.Timeout, row+` !== null`, `document.getElementById("mqtt-clients").textContent`)
	if text := hubtest.Eval[string](t, b, row+`.textContent`); !strings.Contains(text, "alerts/#") || !strings.Contains(text, "anonymous") || !strings.Contains(text, "tcp") {
		t.Errorf("mosquitto_sub's row: %q", text)
	}
	b.Do(t, chromedp.Click(chromedp.CSS(`#mqtt-clients tr[data-id="watcher"] button`)))
	if err := watcher.Wait(); err != nil || !strings.Contains(out.String(), "Received DISCONNECT (152)") {
		t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
	}
	b.WaitJS(t, hubtest.Timeout, row+` === null`, `document.getElementById("mqtt-clients").textContent`)

	// Browse ret/#, then a dry run: it lists the three, and removes nothing.
	b.Do(t,
		chromedp.SetValue(chromedp.CSS(`#retained-filter`), "ret/#"),
		chromedp.Click(chromedp.CSS(`.admin-filter-form button[type=submit]`)))
	rows := `[...document.querySelectorAll("#retained tr[data-topic]")].map(r => r.dataset.topic).join(" ")`
	b.WaitJS(t, hubtest.Timeout, rows+` === "ret/a ret/b ret/c/d"`, rows)
	b.Do(t, chromedp.Click(chromedp.CSS(`#clear-filter`)))
	plan := `[...document.querySelectorAll("#clear-plan li")].map(li => li.textContent).join(" ")`
	b.WaitJS(t, hubtest.Timeout, `!document.getElementById("clear-plan").hidden && `+plan+` === "ret/a ret/b ret/c/d"`, plan)
	if got := mosquittoRetained(t, h.MQTT, "#"); len(got) != 4 {
		t.Fatalf("after the dry run mosquitto_sub got %q", got)
	}

	// The clear: gone for MQTT clients too.
	b.Do(t, chromedp.Click(chromedp.CSS(`#clear-confirm`)))
	b.WaitJS(t, hubtest.Timeout, `document.querySelector(".admin-undo-entry") !== null && document.querySelectorAll("#retained tr[data-topic]").length === 0`,
		`document.getElementById("retained").textContent`)
	if got := mosquittoRetained(t, h.MQTT, "#"); !slices.Equal(got, []string{"keep/x kept"}) {
		t.Fatalf("after the clear mosquitto_sub got %q", got)
	}

	// The undo brings them back as they were.
	b.Do(t, chromedp.Click(chromedp.CSS(`.admin-undo-entry button`)))
	b.WaitJS(t, hubtest.Timeout, `document.querySelector(".admin-undo-entry") === null && `+rows+` === "ret/a ret/b ret/c/d"`, rows)
	if got := mosquittoRetained(t, h.MQTT, "ret/#"); !slices.Equal(got, retained) {
		t.Fatalf("after the undo mosquitto_sub got %q, want %q", got, retained)
	}
	checkConsole(t, b)
}

// TestAdminViewRefusesNonAdmins: a user who reads everything but is no
// admin logs in, and the admin view says they are not one (the API
// answered 403) instead of showing anything.
func TestAdminViewRefusesNonAdmins(t *testing.T) {
	t.Parallel()
	users := filepath.Join(t.TempDir(), "users.toml")
	content := fmt.Sprintf("[users.viewer]\npassword = %q\nread = [\"#\"]\n", hubtest.PasswordHash(t, "viewer-secret"))
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, "--users", users)
	b := hubtest.NewBrowser(t)
	b.Do(t,
		chromedp.Navigate("http://"+h.HTTP+"/admin"),
		chromedp.WaitVisible(`#user`),
		chromedp.SendKeys(`#user`, "viewer"),
		chromedp.SendKeys(`#password`, "viewer-secret"),
		chromedp.Submit(`#password`),
	)
	b.WaitJS(t, hubtest.Timeout, `location.pathname === "/admin" && document.body?.dataset.admin === "no"`, `location.href + " " + document.body?.textContent.slice(0, 300)`)
	if text := hubtest.Eval[string](t, b, `document.querySelector(".admin-refused").textContent`); !strings.Contains(text, "viewer is not an admin") {
		t.Errorf("the page says %q", text)
	}
	if hubtest.Eval[bool](t, b, `document.getElementById("admin-sections").hidden`) != true {
		t.Error("the admin sections show")
	}
	checkConsole(t, b, regexp.MustCompile(`/favicon\.ico.* 401 \(Unauthorized\)`), regexp.MustCompile(`/api/admin/.* 403 \(Forbidden\)`))
}

// TestAdminClearSurvivesRestart: retained messages cleared in the admin
// view stay cleared after the hub restarts on the same --data: gone from
// the broker's store and from the hub's last values.
func TestAdminClearSurvivesRestart(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	h := startHub(t, "--data", data)
	mosquittoPublishRetained(t, h.MQTT, []string{"ret/a 1", "ret/b 2", "keep/x 3"})
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, _, body := get(t, "GET", "http://"+h.HTTP+"/api/state?filter=%23", nil, "")
		return strings.Contains(body, `"ret/b"`)
	}, "the hub never had ret/b")
	status, _, body := get(t, "POST", "http://"+h.HTTP+"/api/admin/retained/clear",
		map[string][]string{"Content-Type": {"application/json"}}, `{"filter": "ret/#"}`)
	var res struct{ Count int }
	if err := json.Unmarshal([]byte(body), &res); status != 200 || err != nil || res.Count != 2 {
		t.Fatalf("clear = %d %s", status, body)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}

	h = startHub(t, "--data", data)
	if got := mosquittoRetained(t, h.MQTT, "#"); !slices.Equal(got, []string{"keep/x 3"}) {
		t.Fatalf("after the restart mosquitto_sub got %q", got)
	}
	_, _, body = get(t, "GET", "http://"+h.HTTP+"/api/state?filter=%23", nil, "")
	if strings.Contains(body, `"ret/`) || !strings.Contains(body, `"keep/x"`) {
		t.Fatalf("the hub's last values after the restart: %s", body)
	}
}

// TestAdminScreenshot takes the README's picture of the admin view: the
// demo's motes as MQTT clients, a dashboard as a browser session, and the
// dry run of a clear. With -update it writes docs/admin.png.
func TestAdminScreenshot(t *testing.T) {
	t.Parallel()
	h := startHub(t, "--demo")
	waitHistory(t, h, temperature, 1)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.EmulateViewport(1280, 800))
	dash := b.NewTab(t)
	openDashboard(t, dash, h, "")
	openAdmin(t, b, h)
	b.WaitJS(t, hubtest.Timeout, `document.querySelectorAll("#sessions tr[data-id]").length === 1 && document.querySelectorAll("#mqtt-clients tr[data-id]").length > 0`,
		`document.getElementById("sessions").textContent`)
	b.Do(t,
		chromedp.SetValue(chromedp.CSS(`#retained-filter`), "homeassistant/#"),
		chromedp.Click(chromedp.CSS(`.admin-filter-form button[type=submit]`)))
	b.WaitJS(t, hubtest.Timeout, `document.getElementById("retained").dataset.filter === "homeassistant/#"`, `document.getElementById("retained").dataset.filter`)

	saveScreenshot(t, screenshot(t, b), "admin.png")
	checkConsole(t, b)
}

// TestAdminPageKeepsTheLast20Clears: the page keeps at most 20 clears for
// an undo; a 21st lets the oldest go, and says so.
func TestAdminPageKeepsTheLast20Clears(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	var msgs []string
	for i := range 21 {
		msgs = append(msgs, fmt.Sprintf(`{"topic": "u/%02d", "payload": "eA=="}`, i))
	}
	status, _, body := get(t, "POST", "http://"+h.HTTP+"/api/admin/retained/restore",
		map[string][]string{"Content-Type": {"application/json"}}, `{"messages": [`+strings.Join(msgs, ",")+`]}`)
	if status != 200 || !strings.Contains(body, `"restored":21`) {
		t.Fatalf("restore = %d %s", status, body)
	}
	b := hubtest.NewBrowser(t)
	openAdmin(t, b, h)
	b.WaitJS(t, hubtest.Timeout, `document.querySelectorAll("#retained tr[data-topic]").length === 21`, `document.getElementById("retained").textContent`)
	// Each clear as the page's confirm button makes it, one after the other.
	hubtest.Eval[bool](t, b, `window.clearsDone = false;
	(async () => {
		for (let i = 0; i < 21; i++) await motehubAdmin.retained.clear("u/" + String(i).padStart(2, "0"), document.createElement("button"));
		window.clearsDone = true;
	})();
	true`)
	b.WaitJS(t, 2*hubtest.Timeout, `window.clearsDone`, `document.querySelectorAll(".admin-undo-entry").length`)
	entries := `[...document.querySelectorAll(".admin-undo-entry")].map(e => e.dataset.filter)`
	b.WaitJS(t, hubtest.Timeout, entries+`.length === 20 && `+entries+`[0] === "u/01" && `+entries+`[19] === "u/20"`, entries+`.join(" ")`)
	if text := hubtest.Eval[string](t, b, `document.getElementById("notices").textContent`); !strings.Contains(text, "u/00") || !strings.Contains(text, "can no longer be undone") {
		t.Errorf("notices: %q", text)
	}
	checkConsole(t, b)
}
