// The dashboard's entry point: a store fed by the connection to the hub,
// and the views that draw it.

import { connectSession } from "./session.js";
import { DevicesView } from "./devices.js";
import { LogView } from "./log.js";
import { MeView } from "./me.js";
import { PublishView } from "./publish.js";
import { cardHistory } from "./series.js";
import { StatusView } from "./status.js";
import { Store } from "./store.js";

const store = new Store(cardHistory);
const shared = new URLSearchParams(location.search).get("shared") !== "0";
const link = connectSession((ev) => store.apply(ev), { shared });

const $ = (id) => document.getElementById(id);
const command = (topic, payload) => link.command(topic, payload, "");
const deviceCommand = (device, entity, value, topic) => link.deviceCommand(device, entity, value, topic, "");
const views = [
  new StatusView($("connection"), $("summary"), $("notices"), store, link),
  new DevicesView($("devices"), store, command, deviceCommand, $("device-tools")),
  new PublishView($("publish"), store, link),
  new LogView($("log"), store),
  new MeView($("me"), $("publish"), $("devices"), store),
];
store.subscribe((changes) => {
  for (const v of views) v.render(changes);
});
setInterval(() => {
  views[0].tick();
  views[1].tick();
}, 1000);

// For the tests and for curious people in the developer console.
window.motehub = { store, link, mode: () => link.mode };
