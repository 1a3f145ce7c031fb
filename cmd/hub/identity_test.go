package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// The dashboard knows who is logged in: their name, what they may not do,
// log-out; the login page says what went wrong.

// meHelpers are shorthands the identity tests evaluate in the page.
const meHelpers = `
window.meUser = () => document.querySelector("#me .me-user")?.textContent ?? "";
// controls: the controls of the tiles that command a topic, with whether
// each is enabled and its title.
window.controls = () => [...document.querySelectorAll("#devices [data-command-topic]")].flatMap(tile =>
  [...tile.querySelectorAll("button, input, select")].map(c => ({topic: tile.dataset.commandTopic, enabled: !c.disabled, title: c.title})));
window.enabledControls = () => controls().filter(c => c.enabled);
true`

// logIn fills in the login page the browser is on and submits it.
func logIn(t *testing.T, b *hubtest.Browser, user, password string) {
	t.Helper()
	b.Do(t,
		chromedp.WaitVisible(`#password`),
		chromedp.SetValue(`#user`, user),
		chromedp.SendKeys(`#password`, password),
		chromedp.Submit(`#password`),
	)
}

// openAs logs user in from the login page and waits for a live dashboard
// that knows who they are.
func openAs(t *testing.T, b *hubtest.Browser, user, password string) {
	t.Helper()
	logIn(t, b, user, password)
	b.WaitJS(t, hubtest.Timeout, `window.motehub !== undefined && document.getElementById("connection").dataset.state === "live"`, `location.href`)
	hubtest.Eval[bool](t, b, meHelpers)
	b.WaitJS(t, hubtest.Timeout, `meUser() === "`+user+`"`, `document.getElementById("me").outerHTML`)
	// The demo's motes and their controls are in.
	b.WaitJS(t, hubtest.Timeout, `controls().length >= 3`, `JSON.stringify(controls())`)
}

// shoot takes a screenshot of the page at 1280×800 for docs/ with -update,
// and for $HUB_SCREENSHOTS when set.
func shoot(t *testing.T, b *hubtest.Browser, name string) {
	t.Helper()
	if !*update && os.Getenv("HUB_SCREENSHOTS") == "" {
		return
	}
	b.Do(t, chromedp.EmulateViewport(1280, 800), chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))
	saveScreenshot(t, screenshot(t, b), name)
}

// TestDashboardKnowsWhoIsLoggedIn: with a users file and the demo, the
// login page keeps the name after a wrong password and says so; a read-only
// user sees their name, no enabled control (each says why), no Publish form
// and no Admin link, and logs out to the login page, after which /api/me is
// 401; a user who may command the relays gets those switches and the form;
// an admin gets the Admin link and every control.
func TestDashboardKnowsWhoIsLoggedIn(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	users, _ := writeUsers(t, false)
	h := startHub(t, "--demo", "--demo-motes", "1", "--users", users)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/"))

	// A wrong password: the name stays, the page says what went wrong.
	logIn(t, b, "viewer", "not-the-password")
	b.WaitJS(t, hubtest.Timeout, `document.getElementById("login-message")?.textContent === "Wrong user name or password."`, `document.body.innerText`)
	if got := hubtest.Eval[string](t, b, `document.getElementById("user").value`); got != "viewer" {
		t.Errorf("after a wrong password the user name is %q, want viewer", got)
	}
	// The dashboard's style sheet, though nobody is logged in: its accent colour.
	b.WaitJS(t, hubtest.Timeout, `document.readyState === "complete" && getComputedStyle(document.querySelector(".login-form button")).backgroundColor === "rgb(47, 111, 115)"`,
		`getComputedStyle(document.querySelector(".login-form button")).backgroundColor`)

	shoot(t, b, "login.png")

	// The read-only user.
	openAs(t, b, "viewer", viewerPassword)
	shoot(t, b, "dashboard-read-only.png")
	if enabled := hubtest.Eval[[]any](t, b, `enabledControls()`); len(enabled) != 0 {
		t.Errorf("a read-only user has enabled controls: %v", enabled)
	}
	if bad := hubtest.Eval[[]any](t, b, `controls().filter(c => c.title !== "read-only: you may not write " + c.topic)`); len(bad) != 0 {
		t.Errorf("controls that do not say why they are disabled: %v", bad)
	}
	if !hubtest.Eval[bool](t, b, `document.getElementById("publish").hidden && document.querySelector("#me .me-admin") === null`) {
		t.Errorf("a read-only user sees the Publish form or an Admin link: %s", hubtest.Eval[string](t, b, `document.getElementById("me").outerHTML`))
	}
	// Controls drawn later (a device that appears) are disabled too.
	hubtest.Eval[bool](t, b, `document.getElementById("devices").insertAdjacentHTML("beforeend",
		'<li class="tile" id="late-tile" data-command-topic="late/set"><button type="button">Turn on</button></li>'); true`)
	b.WaitJS(t, hubtest.Timeout, `document.querySelector("#late-tile button").disabled`, `document.getElementById("late-tile").outerHTML`)
	hubtest.Eval[bool](t, b, `document.getElementById("late-tile").remove(); true`)

	// Log out: the login page, and the hub no longer knows the browser.
	b.Do(t, chromedp.Click(`#me .me-logout button`))
	b.WaitJS(t, hubtest.Timeout, `location.pathname === "/login" && document.getElementById("password") !== null`, `location.href`)
	hubtest.Eval[bool](t, b, `window.meStatus = 0; fetch("/api/me").then(r => window.meStatus = r.status); true`)
	b.WaitJS(t, hubtest.Timeout, `window.meStatus === 401`, `window.meStatus`)

	// A user who may command the relays: those switches, and the form.
	openAs(t, b, "alice", alicePassword)
	b.WaitJS(t, hubtest.Timeout, `enabledControls().some(c => /^nodes\/mote-1\/relay\/[^/]+\/set$/.test(c.topic))`, `JSON.stringify(controls())`)
	if bad := hubtest.Eval[[]any](t, b, `controls().filter(c => c.enabled !== /^nodes\/[^/]+\/relay\/[^/]+\/set$/.test(c.topic))`); len(bad) != 0 {
		t.Errorf("alice's controls, enabled where she may not write or disabled where she may: %v", bad)
	}
	if !hubtest.Eval[bool](t, b, `!document.getElementById("publish").hidden`) {
		t.Error("alice, who may write, has no Publish form")
	}
	b.Do(t, chromedp.Click(`#me .me-logout button`))
	b.WaitJS(t, hubtest.Timeout, `location.pathname === "/login" && document.getElementById("password") !== null`, `location.href`)

	// An admin: the Admin link and every control.
	openAs(t, b, "ops", opsPassword)
	if got := hubtest.Eval[string](t, b, `document.querySelector("#me .me-admin")?.getAttribute("href") ?? ""`); got != "/admin" {
		t.Errorf("the admin's Admin link is %q, want /admin", got)
	}
	if disabled := hubtest.Eval[[]any](t, b, `controls().filter(c => !c.enabled)`); len(disabled) != 0 {
		t.Errorf("an admin who may write everything has disabled controls: %v", disabled)
	}
	// Chromium may ask for /favicon.ico before the login, and be refused.
	checkConsole(t, b, regexp.MustCompile(`/favicon\.ico.* 401 \(Unauthorized\)`), regexp.MustCompile(`/login.* 401 \(Unauthorized\)`),
		regexp.MustCompile(`/api/me.* 401 \(Unauthorized\)`)) // the wrong password, and /api/me after logging out
}

// TestDashboardSaysTheHubRestarted: a dashboard whose hub restarts without
// its history says so in a person's words, not the protocol's.
func TestDashboardSaysTheHubRestarted(t *testing.T) {
	t.Parallel()
	first := startHub(t)
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, first, "")
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	b.WaitJS(t, hubtest.Timeout, `connState() !== "live"`, `connState()`)
	startHub(t, "--http", first.HTTP)
	want := "The hub restarted; values are current, messages sent while it was down are not in the log."
	b.WaitJS(t, 20*time.Second, `[...document.querySelectorAll("#notices .notice.warn")].some(n => n.textContent.includes("`+want+`"))`,
		`document.getElementById("notices").textContent + " | " + connState()`)
	if text := hubtest.Eval[string](t, b, `document.getElementById("notices").textContent`); strings.Contains(text, "epoch") {
		t.Errorf("the resync notice speaks protocol: %q", text)
	}
	checkConsole(t, b, regexp.MustCompile(`WebSocket connection to .* failed`))
}
