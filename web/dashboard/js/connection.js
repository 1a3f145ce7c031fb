// connect gives a tab its link to the hub: the SharedWorker's session when
// the browser has SharedWorker (one WebSocket for every tab), else a
// HubClient of the tab's own. Both deliver the same events (see client.js)
// to onEvent, starting with a snapshot, and take the same requests.
//
// ?shared=0 in the page's address forces a connection of the tab's own.

import { HubClient, wsURL } from "./client.js";

// The worker's name is part of its identity: a dashboard whose tab-worker
// messages change must change it, so that new tabs do not talk to a worker
// of an older version that still serves open tabs.
const WORKER_NAME = "motehub-session-4";
const WORKER_START_TIMEOUT = 4000;

export function connect(onEvent, { shared = true } = {}) {
  if (shared && typeof SharedWorker === "function") {
    const link = sharedLink(onEvent);
    if (link) return link;
  }
  return directLink(onEvent);
}

function directLink(onEvent, link = {}) {
  const client = new HubClient(wsURL(location));
  client.on(onEvent);
  onEvent(client.snapshot());
  client.start();
  return Object.assign(link, {
    mode: "direct",
    command: (topic, payload, ref) => client.command(topic, payload, ref),
    publish: (topic, payload, ref) => client.publish(topic, payload, ref),
    deviceCommand: (device, entity, value, topic, ref) => client.deviceCommand(device, entity, value, topic, ref),
    retry: () => client.retryNow(),
  });
}

function sharedLink(onEvent) {
  let worker;
  try {
    worker = new SharedWorker(new URL("./worker.js", import.meta.url), { type: "module", name: WORKER_NAME });
  } catch {
    return null;
  }
  const port = worker.port;
  const link = {
    mode: "shared",
    command: (topic, payload, ref) => port.postMessage({ type: "command", topic, payload, ref }),
    publish: (topic, payload, ref) => port.postMessage({ type: "publish", topic, payload, ref }),
    deviceCommand: (device, entity, value, topic, ref) => port.postMessage({ type: "device-command", device, entity, value, topic, ref }),
    retry: () => port.postMessage({ type: "retry" }),
  };
  let alive = false;
  // A worker that cannot start (blocked, or a script error) leaves the tab
  // with a connection of its own instead.
  const fallBack = () => {
    if (alive || link.mode !== "shared") return;
    port.close();
    directLink(onEvent, link);
  };
  const watchdog = setTimeout(fallBack, WORKER_START_TIMEOUT);
  worker.onerror = fallBack;
  port.onmessage = (e) => {
    if (link.mode !== "shared") return;
    if (!alive) {
      alive = true;
      clearTimeout(watchdog);
    }
    if (e.data?.type === "worker-error") {
      console.error("motehub worker:", e.data.text);
      return;
    }
    if (e.data?.type === "batch") for (const ev of e.data.events) onEvent(ev);
    else onEvent(e.data);
  };
  addEventListener("pagehide", () => port.postMessage({ type: "bye" }));
  // Back from the back-forward cache, the worker has forgotten this tab.
  addEventListener("pageshow", (e) => e.persisted && location.reload());
  return link;
}
