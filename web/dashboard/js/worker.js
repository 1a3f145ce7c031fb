// The SharedWorker that the dashboard's tabs share: it holds the one
// WebSocket session (a HubClient) and relays its events to every tab, so
// that ten open tabs cost the hub one session, not ten. A tab that connects
// first gets a snapshot (status, last values, recent lines and commands),
// then every event, in order, in batches (batch.js).
//
// Messages from a tab: {type: "command"|"publish", topic, payload, ref},
// {type: "device-command", device, entity, value, topic, ref},
// {type: "retry"}, {type: "bye"} (the tab is going away).

import { EventBatch } from "./batch.js";
import { HubClient, wsURL } from "./client.js";

const ports = new Set();
const client = new HubClient(wsURL(self.location));
const batch = new EventBatch((b) => broadcast(b));
client.on((ev) => batch.add(ev));

function broadcast(ev) {
  for (const port of ports) port.postMessage(ev);
}

function leave(port) {
  if (ports.delete(port)) client.setTabs(ports.size);
}

self.onconnect = (e) => {
  const port = e.ports[0];
  // What waits happened before the snapshot the new tab gets: the others get it first.
  batch.flush();
  ports.add(port);
  port.onmessage = (m) => {
    const msg = m.data ?? {};
    switch (msg.type) {
      case "command":
        client.command(msg.topic, msg.payload, msg.ref);
        break;
      case "publish":
        client.publish(msg.topic, msg.payload, msg.ref);
        break;
      case "device-command":
        client.deviceCommand(msg.device, msg.entity, msg.value, msg.topic, msg.ref);
        break;
      case "retry":
        client.retryNow();
        break;
      case "bye":
        leave(port);
        break;
    }
  };
  port.addEventListener("close", () => leave(port)); // where browsers have it
  port.postMessage(client.snapshot());
  client.setTabs(ports.size);
  client.start();
};

// A worker's errors show in no tab's console: tell the tabs, which log them.
self.addEventListener("error", (e) => broadcast({ type: "worker-error", text: `${e.message} (${e.filename}:${e.lineno})` }));
self.addEventListener("unhandledrejection", (e) => broadcast({ type: "worker-error", text: String(e.reason) }));
