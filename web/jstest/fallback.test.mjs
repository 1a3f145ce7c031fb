// Behind a proxy that refuses WebSocket the client falls back to SSE, with
// the same events (devices and who the session is too); once the proxy
// lets WebSocket through, the client moves back to it by itself, and the
// numbered messages that flow all along arrive once each, in order.

import assert from "node:assert/strict";
import test from "node:test";

import { connect } from "../dashboard/motehub.js";
import { connectMQTT, dataDir, memoryStorage, record, startHTTPProxy, startHub, waitFor, within } from "./harness.mjs";

test("a refused WebSocket falls back to SSE, and the client moves back to WebSocket once it opens", {timeout: 90_000}, async (t) => {
	const server = await startHub(t, await dataDir("fallback"));
	const proxy = await startHTTPProxy(t, server.http, {refuseUpgrade: true});
	const hub = connect(`http://${proxy.addr}`, {
		WebSocket, storage: memoryStorage(), subscribe: ["jstest/#"],
		backoff: {upgrade: 200, upgradeMax: 400}, // tries the WebSocket again every 0.1 to 0.4 s
	});
	t.after(() => hub.close());
	const log = record(hub);
	const sessions = [];
	hub.on("session", (s) => sessions.push(s));
	await waitFor(() => hub.status.state === "open", () => `the client is not open: ${JSON.stringify(log.status)}`);
	assert.equal(hub.status.transport, "sse", `open over ${hub.status.transport}, want sse (the proxy refused ${proxy.refused} handshakes)`);
	assert.ok(proxy.refused > 0, "the client never tried a WebSocket");

	// Over SSE: who the session is, and device events.
	await waitFor(() => sessions.length > 0, () => "no session event over SSE");
	assert.equal(sessions[0].user, "anonymous");
	assert.equal(sessions[0].open, true);
	assert.match(hub.lastId, new RegExp(`^${sessions[0].epoch}-\\d+$`), `session epoch ${sessions[0].epoch}`);
	const device = await connectMQTT(t, server, "jstest-numbers");
	await within(device.publishAsync("jstest/dev1/state", JSON.stringify({temperature: 21.5}), {qos: 1}), "a device's state");
	await waitFor(() => log.device.some((d) => d.id.includes("jstest/dev1")), () => `no device event over SSE: ${JSON.stringify(log.device)}`);
	const refusedBefore = proxy.refused;
	await waitFor(() => proxy.refused > refusedBefore + 1, () => `the client on SSE does not try the WebSocket again (${proxy.refused} refused)`);

	// Messages flow; halfway the proxy lets WebSocket through.
	const topic = "jstest/seq";
	for (let n = 1; n <= 200; n++) {
		await within(device.publishAsync(topic, JSON.stringify({n}), {qos: 1}), `publishing ${n}`);
		if (n === 100) proxy.refuseUpgrade = false;
		await new Promise((r) => setTimeout(r, 10));
	}
	await waitFor(() => hub.status.transport === "websocket" && hub.status.state === "open",
		() => `the client did not move back to WebSocket: ${JSON.stringify(hub.status)}, ${proxy.upgrades} handshakes passed`);
	const numbers = () => log.message.filter((m) => m.topic === topic).map((m) => m.payload.n);
	await waitFor(() => numbers().length >= 200, () => `${numbers().length} of 200 messages`);
	const want = Array.from({length: 200}, (_, i) => i + 1);
	assert.deepEqual(numbers(), want, `missing ${JSON.stringify(want.filter((n) => !numbers().includes(n)))}`);
	assert.deepEqual(log.resync, [], "the WebSocket resumed where SSE was: no resync");
	assert.equal(proxy.upgrades, 1, "one WebSocket took over, and stayed");
	assert.ok(sessions.at(-1).id !== "" && sessions.at(-1).resumed, `the WebSocket's session ${JSON.stringify(sessions.at(-1))}`);

	// Device events go on over the WebSocket.
	const before = log.device.length;
	await within(device.publishAsync("jstest/dev1/state", JSON.stringify({temperature: 22}), {qos: 1}), "a device's state");
	await waitFor(() => log.device.length > before, () => "no device event over the WebSocket");
});
