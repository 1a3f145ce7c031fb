// What the Node tests of motehub.js share: hub processes they start and
// stop, a TCP proxy between client and hub whose connections a test kills,
// MQTT devices (MQTT.js), and waiting with a deadline.
//
// cmd/hub's TestMotehubJSNode runs these tests with the environment below
// (see cmd/hub/motehubjs_test.go); each test starts its own hubs, on loopback,
// with --data in the temporary directory it is given, and stops them (its
// own processes only) when it ends.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import http from "node:http";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";

/** The environment the Go test gives. */
export const env = {
	hub: need("MOTEHUB_HUB_BIN"), // the hub binary
	tmp: need("MOTEHUB_JSTEST_TMP"), // a directory the tests may write to
	mqttjs: need("MOTEHUB_MQTTJS"), // the directory of the npm package mqtt
};

function need(name) {
	const v = process.env[name];
	if (!v) throw new Error(`${name} is not set: run these tests with \`go test ./cmd/hub -run TestMotehubJSNode\``);
	return v;
}

/** How long a test waits for something that should happen at once (ms). */
export const timeout = 10_000;

/**
 * waitFor polls cond every 10 ms until it returns a truthy value, which it
 * returns; after ms it throws, with describe() in the message.
 */
export async function waitFor(cond, describe, ms = timeout) {
	const deadline = Date.now() + ms;
	for (;;) {
		const v = await cond();
		if (v) return v;
		if (Date.now() > deadline) throw new Error(`after ${ms} ms: ${describe()}`);
		await new Promise((r) => setTimeout(r, 10));
	}
}

/** within is p, or a rejection when it has not settled after ms. */
export function within(p, what, ms = timeout) {
	let timer;
	const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms); });
	return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A temporary directory of its own for one hub's --data. */
export function dataDir(name) {
	return mkdtemp(path.join(env.tmp, name + "-"));
}

/**
 * startHub runs the hub binary on free loopback ports with --data data
 * ("": memory only) and args, waits for its "ready" line, and kills it (its
 * own PID) when the test ends if it still runs. The hub's http and mqtt
 * addresses are "host:port".
 */
export async function startHub(t, data, ...args) {
	const child = spawn(env.hub, ["--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", data, ...args], {
		stdio: ["ignore", "pipe", "pipe"],
		env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HUB_"))),
	});
	let log = "";
	child.stdout.on("data", (b) => { log += b; });
	child.stderr.on("data", (b) => { log += b; });
	let exited = null;
	const exit = once(child, "exit").then(([code, signal]) => { exited = {code, signal}; });
	const hub = {
		get log() { return log; },
		get exited() { return exited; },
		http: "", mqtt: "",
		/** stop sends SIGTERM and waits for the exit (a hub drains and exits 0). */
		async stop() {
			if (exited) return exited;
			child.kill("SIGTERM");
			await exit;
			return exited;
		},
	};
	t.after(async () => {
		if (!exited) child.kill("SIGKILL");
		await exit;
	});
	await waitFor(() => exited || /msg=ready/.test(log), () => `hub not ready; log:\n${log}`);
	if (exited) throw new Error(`hub exited (${JSON.stringify(exited)}) before it was ready:\n${log}`);
	for (const [, proto, addr] of log.matchAll(/msg=listening proto=(\w+) addr=(\S+)/g)) hub[proto] = addr;
	return hub;
}

/** publishHTTP publishes [topic, payload] through the hub's POST /api/publish. */
export async function publishHTTP(hub, topic, payload, headers = {}) {
	const res = await fetch(`http://${hub.http}/api/publish`, {
		method: "POST", headers: {"Content-Type": "application/json", ...headers}, body: JSON.stringify([topic, payload]), signal: AbortSignal.timeout(timeout),
	});
	if (!res.ok) throw new Error(`POST /api/publish: ${res.status} ${await res.text()}`);
}

/** stateOf is the hub's last value of topic (GET /api/state), or undefined. */
export async function stateOf(hub, topic) {
	const res = await fetch(`http://${hub.http}/api/state?filter=${encodeURIComponent(topic)}`, {signal: AbortSignal.timeout(timeout)});
	const body = await res.json();
	const values = body.values ?? body;
	if (Array.isArray(values)) return values.find((v) => (v.topic ?? v[0]) === topic);
	return values?.[topic];
}

/**
 * startProxy forwards TCP connections from a free loopback port to
 * proxy.target ("host:port", which the test may change: a restarted hub
 * listens elsewhere). proxy.kill() resets every open connection, both
 * ways (RST: the connection dies, it is not closed cleanly), as a network
 * that drops it would. Everything is closed when the test ends.
 */
export async function startProxy(t, target) {
	const pairs = new Set();
	const proxy = {target, accepted: 0, killed: 0, url: ""};
	const server = net.createServer((client) => {
		proxy.accepted++;
		const [host, port] = splitAddr(proxy.target);
		const upstream = net.connect({host, port});
		const pair = {client, upstream};
		pairs.add(pair);
		client.pipe(upstream);
		upstream.pipe(client);
		const end = () => {
			pairs.delete(pair);
			client.destroy();
			upstream.destroy();
		};
		for (const s of [client, upstream]) {
			s.on("error", end);
			s.on("close", end);
		}
	});
	server.listen(0, "127.0.0.1");
	await once(server, "listening");
	proxy.addr = `127.0.0.1:${server.address().port}`;
	/** kill resets every connection open now and returns how many. */
	proxy.kill = () => {
		const n = pairs.size;
		for (const {client, upstream} of [...pairs]) {
			client.resetAndDestroy();
			upstream.resetAndDestroy();
		}
		pairs.clear();
		proxy.killed += n;
		return n;
	};
	/** open is how many connections are open now. */
	proxy.open = () => pairs.size;
	t.after(() => {
		proxy.kill();
		server.close();
	});
	return proxy;
}

function splitAddr(addr) {
	const i = addr.lastIndexOf(":");
	return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

const require = createRequire(import.meta.url);

/** connectMQTT connects an MQTT.js client to the hub's broker and ends it when the test ends. */
export async function connectMQTT(t, hub, clientId, options = {}) {
	const mqtt = require(env.mqttjs);
	const client = await mqtt.connectAsync(`mqtt://${hub.mqtt}`, {clientId, reconnectPeriod: 0, connectTimeout: timeout, ...options});
	t.after(() => within(client.endAsync(true), "ending an MQTT client").catch(() => {}));
	return client;
}

/**
 * startRelay runs a device on MQTT (MQTT.js) in the Clown.Talk manner: it
 * obeys commands on topic + "/set" by publishing the state asked for on
 * topic (retained), after delay ms. relay.commands lists the payloads it
 * received, in order. Other options are MQTT.js's (username, password).
 */
export async function startRelay(t, hub, topic, {delay = 0, clientId = "jstest-relay", ...options} = {}) {
	const client = await connectMQTT(t, hub, clientId, options);
	const relay = {client, commands: []};
	client.on("message", (_topic, payload) => {
		relay.commands.push(payload.toString());
		setTimeout(() => client.publish(topic, payload, {qos: 1, retain: true}), delay);
	});
	await within(client.subscribeAsync(topic + "/set", {qos: 1}), `subscribing to ${topic}/set`);
	return relay;
}

/** record collects what a motehub.js client emits: every event, in order. */
export function record(hub) {
	const log = {message: [], resync: [], status: [], error: [], device: [], state: []};
	for (const name of Object.keys(log)) hub.on(name, (ev) => log[name].push(ev));
	return log;
}

/** memoryStorage is a sessionStorage stand-in for Node. */
export function memoryStorage() {
	const m = new Map();
	return {
		getItem: (k) => (m.has(k) ? m.get(k) : null),
		setItem: (k, v) => { m.set(k, String(v)); },
		removeItem: (k) => { m.delete(k); },
	};
}

/**
 * startHTTPProxy forwards HTTP requests from a free loopback port to the
 * hub at target ("host:port"), streaming responses (event streams too), and
 * WebSocket handshakes as they are, or, while proxy.refuseUpgrade is set,
 * answers them 403 as a proxy that does not pass Upgrade does.
 * proxy.upgrades counts the handshakes passed, proxy.refused those
 * refused. Everything is closed when the test ends.
 */
export async function startHTTPProxy(t, target, {refuseUpgrade = false} = {}) {
	const sockets = new Set();
	const track = (s) => {
		sockets.add(s);
		s.on("close", () => sockets.delete(s));
		s.on("error", () => s.destroy());
	};
	const [host, port] = splitAddr(target);
	const proxy = {refuseUpgrade, upgrades: 0, refused: 0, addr: ""};
	const server = http.createServer((req, res) => {
		const up = http.request({host, port, method: req.method, path: req.url, headers: req.headers}, (answer) => {
			res.writeHead(answer.statusCode, answer.headers);
			answer.pipe(res);
		});
		up.on("error", () => res.destroy());
		res.on("close", () => up.destroy());
		req.pipe(up);
	});
	server.on("connection", track);
	server.on("upgrade", (req, socket, head) => {
		if (proxy.refuseUpgrade) {
			proxy.refused++;
			socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 34\r\nConnection: close\r\n\r\nthis proxy does not pass WebSocket");
			return;
		}
		proxy.upgrades++;
		const upstream = net.connect({host, port});
		track(upstream);
		const lines = [`${req.method} ${req.url} HTTP/1.1`];
		for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
		upstream.write(lines.join("\r\n") + "\r\n\r\n");
		if (head.length) upstream.write(head);
		socket.pipe(upstream);
		upstream.pipe(socket);
		const end = () => {
			socket.destroy();
			upstream.destroy();
		};
		socket.on("close", end);
		upstream.on("close", end);
	});
	server.listen(0, "127.0.0.1");
	await once(server, "listening");
	proxy.addr = `127.0.0.1:${server.address().port}`;
	t.after(() => {
		for (const s of sockets) s.destroy();
		server.close();
	});
	return proxy;
}
