package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// The dashboard with many devices: search, sort, the list view, folding,
// forgetting a device that went away, details with whole topics, and a log
// filter that matches nothing. Everything through what a person does in
// the page (typing, clicking) and sees (the DOM).

// manyHelpers are shorthands the tests evaluate in the page.
const manyHelpers = `
window.card = (id) => document.querySelector('.device-card[data-device-id="' + id + '"]');
window.shownCards = () => [...document.querySelectorAll("#devices .device")];
window.cardNames = () => shownCards().map(c => c.querySelector("h2").textContent);
window.seen = (el) => el !== null && el.offsetParent !== null;
true`

// typeInto replaces what an input holds by text, as typed (input events).
func typeInto(t *testing.T, b *hubtest.Browser, selector, text string) {
	t.Helper()
	b.Do(t, chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(`+fmt.Sprintf("%q", selector)+`); e.value = ""; e.dispatchEvent(new Event("input")); })()`))
	if text != "" {
		b.Do(t, chromedp.SendKeys(selector, text))
	}
}

// TestDashboardManyDevices: 500 simulated motes; searching by name, then by
// an MQTT filter, narrows the page to one card; sorting by name orders the
// cards as people read numbers (mote-2 before mote-10); the list view shows
// a row per device and is kept across a reload. Only the charts seen load
// their history, and the log far below the cards draws when scrolled to.
// With -update it writes docs/dashboard-list.png.
func TestDashboardManyDevices(t *testing.T) {
	const motes = 500
	h := startHub(t, "--demo", "--demo-motes", fmt.Sprint(motes), "--max-connections-per-address", fmt.Sprint(2*motes))
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.EmulateViewport(1280, 800))
	// The page loads 500 devices: allow for a slow machine (and -race).
	navigateSlow(t, b, h)
	b.WaitJS(t, 6*hubtest.Timeout, `shownCards().filter(c => c.dataset.convention === "hardwario").length === `+fmt.Sprint(motes),
		`[motehub.store.models.size, shownCards().length]`)
	// Only the charts drawn ask for their history; the log, far below the
	// cards, draws when it is scrolled to.
	numbers := `[...motehub.store.tiles.values()].filter(t => t.info.kind === "number")`
	if got := hubtest.Eval[[]float64](t, b, `[motehub.store.lazyHistory ? 1 : 0, `+numbers+`.filter(t => t.history !== "none").length, `+numbers+`.length]`); got[0] != 1 || got[1] > got[2]/4 {
		t.Errorf("lazy history %v, %v of %v numeric tiles with a history asked for: want only those seen", got[0], got[1], got[2])
	}
	b.Do(t, chromedp.Evaluate[chromedp.Void](`document.getElementById("log").scrollIntoView()`))
	b.WaitJS(t, hubtest.Timeout, `document.querySelector(".log-lines").childElementCount > 0`, `document.querySelector(".log-lines").childElementCount`)
	b.Do(t, chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))

	typeInto(t, b, ".device-search", "mote-377")
	b.WaitJS(t, hubtest.Timeout, `cardNames().join() === "mote-377"`, `cardNames().slice(0, 5)`)
	if got := hubtest.Eval[string](t, b, `document.querySelector(".device-count").textContent`); !strings.HasPrefix(got, "1 of ") {
		t.Errorf("the count says %q, want 1 of all", got)
	}
	typeInto(t, b, ".device-search", "nodes/+/relay/i2c0-3b/#") // matches the relay's state and command topics of every mote
	b.WaitJS(t, hubtest.Timeout, `cardNames().length === `+fmt.Sprint(motes), `cardNames().length`)
	typeInto(t, b, ".device-search", "nodes/mote-42/#")
	b.WaitJS(t, hubtest.Timeout, `cardNames().join() === "mote-42"`, `cardNames().slice(0, 5)`)
	typeInto(t, b, ".device-search", "no-such-device")
	b.WaitJS(t, hubtest.Timeout, `cardNames().length === 0 && seen(document.querySelector(".device-none"))`, `cardNames().length`)
	if got := hubtest.Eval[string](t, b, `document.querySelector(".device-none").textContent`); got != "No device matches “no-such-device”." {
		t.Errorf("an empty search says %q", got)
	}
	typeInto(t, b, ".device-search", "mote-")
	b.WaitJS(t, hubtest.Timeout, `cardNames().length === `+fmt.Sprint(motes), `cardNames().length`)

	// By name: mote-1, mote-2, ... mote-10, as a collator with numbers orders them.
	b.Do(t, chromedp.SetValue(chromedp.CSS(".device-sort"), "recent"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(".device-sort").dispatchEvent(new Event("change"))`))
	b.Do(t, chromedp.SetValue(chromedp.CSS(".device-sort"), "name"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(".device-sort").dispatchEvent(new Event("change"))`))
	if got := hubtest.Eval[string](t, b, `cardNames().slice(0, 11).join()`); got != "mote-1,mote-2,mote-3,mote-4,mote-5,mote-6,mote-7,mote-8,mote-9,mote-10,mote-11" {
		t.Errorf("sorted by name the cards begin %q", got)
	}
	if !hubtest.Eval[bool](t, b, `(() => { const n = cardNames(), c = new Intl.Collator("en", {numeric: true}); return n.every((x, i) => i === 0 || c.compare(n[i - 1], x) <= 0); })()`) {
		t.Errorf("the cards are not in name order: %v", hubtest.Eval[any](t, b, `cardNames().slice(0, 20)`))
	}

	// The list view: one row per device, kept across a reload.
	cardHeight := hubtest.Eval[float64](t, b, `card("hardwario:nodes/mote-1").getBoundingClientRect().height`)
	b.Do(t, chromedp.Click(chromedp.CSS(".view-toggle")))
	b.WaitJS(t, hubtest.Timeout, `document.getElementById("devices").classList.contains("list")`, `document.getElementById("devices").className`)
	rowHeight := hubtest.Eval[float64](t, b, `card("hardwario:nodes/mote-1").getBoundingClientRect().height`)
	if rowHeight <= 0 || rowHeight > 70 || rowHeight*3 > cardHeight {
		t.Errorf("a mote is %.0f px tall in the list, %.0f px as a card: want one row", rowHeight, cardHeight)
	}
	if got := hubtest.Eval[string](t, b, `document.querySelector(".view-toggle").getAttribute("aria-pressed") + " " + localStorage.getItem("motehub.view")`); got != "true list" {
		t.Errorf("the toggle and what is kept: %q, want true list", got)
	}
	typeInto(t, b, ".device-search", "")
	b.WaitJS(t, hubtest.Timeout, `cardNames().length > `+fmt.Sprint(motes)+` && document.querySelector(".device-count").textContent === ""`, `cardNames().length`)
	b.Do(t, chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))
	if *update || os.Getenv("HUB_SCREENSHOTS") != "" {
		saveScreenshot(t, screenshot(t, b), "dashboard-list.png")
	}
	navigateSlow(t, b, h)
	if !hubtest.Eval[bool](t, b, `document.getElementById("devices").classList.contains("list")`) {
		t.Error("after a reload the page is back to cards")
	}
	checkConsole(t, b)
}

// navigateSlow opens the dashboard like openDashboard, allowing a minute
// for each step, and adds manyHelpers.
func navigateSlow(t *testing.T, b *hubtest.Browser, h *runningHub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 6*hubtest.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+h.HTTP+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	waitSlow(t, b, `window.motehub !== undefined && document.getElementById("connection").dataset.state === "live"`, `location.href`)
	evalSlow[bool](t, b, pageHelpers)
	evalSlow[bool](t, b, manyHelpers)
}

// TestDashboardFindAndForget, with the device traces replayed: the offline
// Zigbee2MQTT plug offers Forget, which takes its card away (also after a
// reload) until asked to show it again; a long topic shows whole on hover
// and in the details; a card folds to its name; a log filter that matches
// nothing says so.
func TestDashboardFindAndForget(t *testing.T) {
	t.Parallel()
	const long = "sites/greenhouse-north-wing/thermometer/0:1/calibrated/averaged/temperature-at-the-roof"
	h := startHub(t)
	player := hubtest.ConnectMQTT(t, h.MQTT, "trace-player")
	replayTraces(t, player)
	hubtest.PublishMQTT(t, player, long, 1, true, []byte(`[21.5, "°C"]`))
	// The device model applies messages in order, after the fan-out: once
	// the last one is in /api/devices, no device changes any more. Forget
	// hides a card until its device changes: a change still on its way when
	// the page forgets the plug would bring its card back.
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return slices.ContainsFunc(deviceIDs(t, h.HTTP), func(id string) bool { return strings.Contains(id, "greenhouse-north-wing") })
	}, "the device model has every message")
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	hubtest.Eval[bool](t, b, manyHelpers)
	plug := "zigbee2mqtt:0x7cb03eaa0a0b1c2d"
	b.WaitJS(t, hubtest.Timeout, `card("`+plug+`")?.dataset.gone === "true" && card("zigbee2mqtt:0x000b57fffec6a5b2") !== null`, `cardNames()`)
	if !hubtest.Eval[bool](t, b, `!seen(card("zigbee2mqtt:0x000b57fffec6a5b2").querySelector(".card-forget")) && seen(card("`+plug+`").querySelector(".card-forget"))`) {
		t.Error("Forget is not offered on the offline plug alone")
	}

	// Cards out of view are drawn in idle time and move the others: a click
	// at where the button was may land on another card's.
	b.Do(t, chromedp.Evaluate[chromedp.Void](`card("`+plug+`").querySelector(".card-forget").click()`))
	b.WaitJS(t, hubtest.Timeout, `card("`+plug+`") === null`, `cardNames()`)
	if got := hubtest.Eval[string](t, b, `document.querySelector(".device-count").textContent`); got != "1 forgotten" {
		t.Errorf("the count says %q, want 1 forgotten", got)
	}
	openDashboard(t, b, h, "") // a reload keeps it forgotten
	hubtest.Eval[bool](t, b, manyHelpers)
	b.WaitJS(t, hubtest.Timeout, `card("zigbee2mqtt:0x000b57fffec6a5b2") !== null && seen(document.querySelector(".show-forgotten"))`, `cardNames()`)
	if hubtest.Eval[bool](t, b, `card("`+plug+`") !== null`) {
		t.Error("after a reload the forgotten plug is back")
	}
	b.Do(t, chromedp.Click(chromedp.CSS(".show-forgotten")))
	b.WaitJS(t, hubtest.Timeout, `card("`+plug+`") !== null`, `cardNames()`)

	// The long topic: cut in the tile, whole in its title and in the details.
	tile := `document.querySelector('.tile[data-topic="` + long + `"]')`
	b.WaitJS(t, hubtest.Timeout, tile+` !== null`, `cardNames()`)
	if got := hubtest.Eval[string](t, b, tile+`.querySelector(".tile-topic").title`); got != long {
		t.Errorf("the topic's title is %q, want the whole topic", got)
	}
	if !hubtest.Eval[bool](t, b, `(() => { const e = `+tile+`.querySelector(".tile-topic"); e.scrollIntoView(); return e.scrollWidth > e.clientWidth; })()`) {
		t.Error("the long topic fits its tile whole: want it cut, as a long topic is")
	}
	b.Do(t, chromedp.Click(chromedp.CSS(`.device[data-device="sites/greenhouse-north-wing"] .card-details`)))
	b.WaitJS(t, hubtest.Timeout, `document.querySelector("dialog.detail")?.open === true`, `document.querySelector("dialog.detail")?.outerHTML`)
	if got := hubtest.Eval[string](t, b, `[...document.querySelectorAll("dialog.detail .detail-topic")].map(e => e.textContent).join()`); !strings.Contains(got, long) {
		t.Errorf("the details show topics %q, want %s", got, long)
	}
	b.Do(t, chromedp.Click(chromedp.CSS(`dialog.detail form button`)))
	b.WaitJS(t, hubtest.Timeout, `!document.querySelector("dialog.detail").open`, `document.querySelector("dialog.detail").open`)

	// Folding one card, then all.
	lamp := `card("zigbee2mqtt:0x000b57fffec6a5b2")`
	b.Do(t, chromedp.Click(chromedp.CSS(`.device-card[data-device-id="zigbee2mqtt:0x000b57fffec6a5b2"] .card-fold`)))
	b.WaitJS(t, hubtest.Timeout, lamp+`.classList.contains("folded") && !seen(`+lamp+`.querySelector(".tiles"))`, lamp+`.className`)
	if got := hubtest.Eval[string](t, b, lamp+`.querySelector(".card-fold").getAttribute("aria-expanded")`); got != "false" {
		t.Errorf("a folded card's button says aria-expanded=%s", got)
	}
	b.Do(t, chromedp.Click(chromedp.CSS(".fold-all")))
	b.WaitJS(t, hubtest.Timeout, `shownCards().every(c => c.classList.contains("folded")) && document.querySelector(".fold-all").textContent === "Unfold all"`,
		`shownCards().filter(c => !c.classList.contains("folded")).length`)
	b.Do(t, chromedp.Click(chromedp.CSS(".fold-all")))
	b.WaitJS(t, hubtest.Timeout, `shownCards().every(c => !c.classList.contains("folded"))`, `shownCards().filter(c => c.classList.contains("folded")).length`)

	// The log: a filter that matches nothing says so, one that matches does not.
	b.Do(t, chromedp.SendKeys(".log-filter", "no/such/+/topic"))
	b.WaitJS(t, hubtest.Timeout, `seen(document.querySelector(".log-none"))`, `document.querySelector(".log-lines").childElementCount`)
	if got := hubtest.Eval[string](t, b, `document.querySelector(".log-none").textContent`); !strings.HasPrefix(got, "No messages match “no/such/+/topic”.") {
		t.Errorf("the empty log says %q", got)
	}
	typeInto(t, b, ".log-filter", "sites/#")
	hubtest.PublishMQTT(t, player, long, 1, true, []byte(`[21.6, "°C"]`))
	b.WaitJS(t, hubtest.Timeout, `!seen(document.querySelector(".log-none")) && document.querySelector(".log-lines").childElementCount > 0`,
		`document.querySelector(".log-lines").childElementCount`)
	checkConsole(t, b)
}
