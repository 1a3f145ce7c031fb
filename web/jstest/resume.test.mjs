// No gap, no duplicate: messages numbered by a device flow while the
// client's TCP connection is killed mid-stream, several times; every
// number arrives once, in order, with no resync (the hub replays what was
// missed). A hub that restarts with its history resumes the same way; one
// that restarts without it says resync, with its current values.

import assert from "node:assert/strict";
import test from "node:test";

import { connect } from "../dashboard/motehub.js";
import { connectMQTT, dataDir, memoryStorage, record, startHub, startProxy, stateOf, waitFor, within } from "./harness.mjs";

/** numbers are the n of the messages of topic the client got, in order. */
const numbers = (log, topic) => log.message.filter((m) => m.topic === topic).map((m) => m.payload.n);

/** openClient connects motehub.js through proxy and waits until it is open. */
async function openClient(t, proxy, options = {}) {
	const hub = connect(`http://${proxy.addr}`, {WebSocket, storage: memoryStorage(), subscribe: ["jstest/#"], ...options});
	t.after(() => hub.close());
	const log = record(hub);
	await waitFor(() => hub.status.state === "open", () => `the client is not open: ${JSON.stringify(log.status)}`);
	return {hub, log};
}

/** publishNumbered publishes {n} for n in from..to on topic (QoS 1, in order), every ms. */
async function publishNumbered(device, topic, from, to, ms, during = () => {}) {
	for (let n = from; n <= to; n++) {
		await within(device.publishAsync(topic, JSON.stringify({n}), {qos: 1}), `publishing ${n}`);
		during(n);
		await new Promise((r) => setTimeout(r, ms));
	}
}

/** inOrder checks that got is exactly from..to. */
function inOrder(got, from, to) {
	const want = Array.from({length: to - from + 1}, (_, i) => from + i);
	const missing = want.filter((n) => !got.includes(n));
	const repeated = got.filter((n, i) => got.indexOf(n) !== i);
	assert.deepEqual(got, want, `missing ${JSON.stringify(missing)}, repeated ${JSON.stringify(repeated)}`);
}

test("killed connections lose and repeat nothing", {timeout: 60_000}, async (t) => {
	const server = await startHub(t, await dataDir("kill"));
	const proxy = await startProxy(t, server.http);
	const {log} = await openClient(t, proxy);
	const device = await connectMQTT(t, server, "jstest-numbers");

	// 300 messages over about 3 s; the connection is killed after every
	// 60th, once the client has reconnected from the kill before (so each
	// kill cuts a live session, mid-stream).
	const topic = "jstest/seq";
	const kills = [];
	await publishNumbered(device, topic, 1, 300, 10, (n) => {
		if (n % 60 === 0 && proxy.open() > 0 && log.status.at(-1)?.state === "open") kills.push({n, cut: proxy.kill()});
	});
	await waitFor(() => numbers(log, topic).at(-1) === 300 || numbers(log, topic).length >= 300,
		() => `the client has ${numbers(log, topic).length} of 300 messages; status ${JSON.stringify(log.status.at(-1))}`, 30_000);
	inOrder(numbers(log, topic), 1, 300);
	assert.ok(kills.length >= 3, `only ${kills.length} kills landed on a live connection: ${JSON.stringify(kills)}`);
	assert.ok(proxy.accepted > kills.length, `the client opened ${proxy.accepted} connections for ${kills.length} kills`);
	assert.deepEqual(log.resync, [], "the hub could replay everything: no resync");
	const ids = log.message.filter((m) => m.topic === topic).map((m) => m.id);
	assert.equal(new Set(ids).size, ids.length, "every message has an id of its own");
});

// How long a client may take to come back after a restart: an attempt made
// while the hub is down may wait out its connectTimeout (Node 20's own
// WebSocket tells nothing of a connection that drops during the handshake:
// the proxy drops it when the hub is not there), then the backoff, then the
// attempt that reaches the new hub, on a machine that may be loaded.
const connectTimeout = 10_000;
const backoff = {max: 2_000};
const comeBack = 2 * connectTimeout + backoff.max;

test("a restart with the hub's history resumes; one without says resync with the current values", {timeout: 120_000}, async (t) => {
	const data = await dataDir("restart");
	let server = await startHub(t, data);
	const proxy = await startProxy(t, server.http);
	const {log} = await openClient(t, proxy, {connectTimeout, backoff});
	let device = await connectMQTT(t, server, "jstest-numbers");
	const topic = "jstest/seq";
	await publishNumbered(device, topic, 1, 20, 5);
	await waitFor(() => numbers(log, topic).length === 20, () => `${numbers(log, topic).length} of 20 messages before the restart`);

	// The same --data: same history, same ids; the client resumes after
	// the last one it had and gets the messages published since.
	// The client tries while the hub is down (as on a loaded machine, where
	// a hub takes seconds to start): the new one starts after that try.
	assert.deepEqual(await server.stop(), {code: 0, signal: null}, "a hub that is stopped exits 0");
	const tries = proxy.accepted;
	await waitFor(() => proxy.accepted > tries, () => "the client did not try to reconnect while the hub was down", comeBack);
	server = await startHub(t, data);
	proxy.target = server.http;
	device = await connectMQTT(t, server, "jstest-numbers-2");
	await publishNumbered(device, topic, 21, 40, 5);
	await waitFor(() => numbers(log, topic).length === 40,
		() => `${numbers(log, topic).length} of 40 messages after a restart with the history; statuses ${JSON.stringify(log.status.slice(-6))}`, comeBack);
	inOrder(numbers(log, topic), 1, 40);
	assert.deepEqual(log.resync, [], "a hub restarted with its history replays: no resync");

	// Without the history: a new epoch. The client cannot resume and says
	// so, with the values the new hub has: one retained before the client
	// is let back in.
	await server.stop();
	server = await startHub(t, await dataDir("fresh"));
	device = await connectMQTT(t, server, "jstest-numbers-3");
	await within(device.publishAsync("jstest/current", JSON.stringify({v: 7}), {qos: 1, retain: true}), "publishing jstest/current");
	await waitFor(() => stateOf(server, "jstest/current"), () => "the new hub has no value of jstest/current");
	proxy.target = server.http;
	await waitFor(() => log.resync.length > 0, () => `no resync after a restart without history; statuses ${JSON.stringify(log.status.slice(-6))}`, comeBack);
	const [resync] = log.resync;
	assert.equal(resync.code, "restarted", `resync ${JSON.stringify(resync)}`);
	assert.deepEqual(resync.values.filter((v) => v.topic === "jstest/current").map((v) => v.payload), [{v: 7}], `resync values ${JSON.stringify(resync.values)}`);

	// And the stream goes on after it.
	await publishNumbered(device, topic, 41, 45, 5);
	await waitFor(() => numbers(log, topic).at(-1) === 45, () => `after the resync: ${JSON.stringify(numbers(log, topic).slice(-5))}`);
	inOrder(numbers(log, topic), 1, 45);
	assert.equal(log.resync.length, 1, "one resync");
});
