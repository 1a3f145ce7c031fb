// command() resolves when the device echoes the state asked for, and
// rejects with the reason when it cannot: timeout (no device answers),
// offline (a control of the device model, whose availability says so:
// nothing is sent), forbidden
// (a read-only user: nothing is sent). One hub with a users file: a device,
// an operator who may command, a viewer who may only read.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import test from "node:test";
import { promisify } from "node:util";

import { connect } from "../dashboard/motehub.js";
import { connectMQTT, dataDir, env, memoryStorage, record, startHub, startRelay, waitFor, within } from "./harness.mjs";

const run = promisify(execFile);

/** addUser adds name with password "pw-" + name and rules to the users file. */
async function addUser(users, name, ...rules) {
	const child = run(env.hub, ["passwd", "--users", users, "--user", name, "--password-stdin", ...rules]);
	child.child.stdin.end(`pw-${name}\n`);
	await child;
}

/** openClient connects motehub.js to the hub as user and waits until it is open. */
async function openClient(t, server, user) {
	const hub = connect(`http://${server.http}`, {WebSocket, storage: memoryStorage(), subscribe: ["#"], auth: {user, password: `pw-${user}`}});
	t.after(() => hub.close());
	const log = record(hub);
	await waitFor(() => hub.status.state === "open", () => `${user}'s client is not open: ${JSON.stringify(log.status)}`);
	return hub;
}

/** outcome is how command() ended: {ok, ms} or {code}. */
async function outcome(p) {
	try {
		return await within(p, "command()", 20_000);
	} catch (err) {
		return {code: err.code, message: err.message};
	}
}

const lamp = "zigbee2mqtt/jstest_lamp";
const lampList = JSON.stringify([{ieee_address: "0x00000000jstest01", type: "Router", friendly_name: "jstest_lamp", definition: {
	model: "test", vendor: "motehub", exposes: [{type: "light", features: [
		{type: "binary", name: "state", label: "State", property: "state", access: 7, value_on: "ON", value_off: "OFF"}]}]}}]);

test("command resolves on the echo, rejects on timeout, offline and forbidden", {timeout: 90_000}, async (t) => {
	const users = path.join(await dataDir("users"), "users.toml");
	await addUser(users, "device", "--read", "#", "--write", "#");
	await addUser(users, "operator", "--read", "#", "--write", "jstest/#", "--write", "zigbee2mqtt/#");
	await addUser(users, "viewer", "--read", "#");
	const server = await startHub(t, await dataDir("command"), "--users", users, "--ack-timeout", "1s");
	const auth = {username: "device", password: "pw-device"};
	const relay = await startRelay(t, server, "jstest/relay/0", {delay: 50, clientId: "jstest-relay", ...auth});
	const operator = await openClient(t, server, "operator");

	await t.test("ok: the device echoes the state", async () => {
		const got = await outcome(operator.command("jstest/relay/0/set", {state: true}));
		assert.equal(got.ok, true, `command: ${JSON.stringify(got)}`);
		assert.ok(typeof got.ms === "number" && got.ms >= 50, `ms ${got.ms}: the device answers after 50 ms`);
		assert.deepEqual(relay.commands, ['{"state":true}']);
	});

	await t.test("timeout: no device answers", async () => {
		const got = await outcome(operator.command("jstest/nobody/0/set", {state: true}));
		assert.equal(got.code, "timeout", `command: ${JSON.stringify(got)}`);
	});

	// A command to a control of the hub's device model: the hub knows the
	// device's availability and refuses before sending anything. (A command
	// to a raw topic, command(topic), is published as it is: the hub does
	// not know which device it is for, and it times out.)
	await t.test("offline: the device's availability says offline, and nothing is sent", async () => {
		const device = await connectMQTT(t, server, "jstest-lamp", auth);
		const sent = [];
		device.on("message", (topic, payload) => sent.push(`${topic} ${payload}`));
		await within(device.subscribeAsync(`${lamp}/set`, {qos: 1}), "subscribing to the lamp's commands");
		await within(device.publishAsync("zigbee2mqtt/bridge/devices", lampList, {qos: 1, retain: true}), "the device list");
		await within(device.publishAsync(lamp, JSON.stringify({state: "OFF"}), {qos: 1, retain: true}), "the lamp's state");
		await within(device.publishAsync(`${lamp}/availability`, JSON.stringify({state: "offline"}), {qos: 1, retain: true}), "the lamp's availability");
		const offline = await waitFor(async () => (await operator.devices()).find((d) => d.name === "jstest_lamp" && d.availability === "offline"),
			() => "the hub's model has no offline jstest_lamp");
		const entity = offline.entities.find((e) => e.control);
		assert.ok(entity, `the lamp has no control: ${JSON.stringify(offline.entities)}`);
		const got = await outcome(operator.command({device: offline.id, entity: entity.id}, true));
		assert.equal(got.code, "offline", `command: ${JSON.stringify(got)}`);
		assert.deepEqual(sent, [], "nothing is sent to an offline device");
	});

	await t.test("forbidden: a user who may only read", async () => {
		const viewer = await openClient(t, server, "viewer");
		const before = relay.commands.length;
		const got = await outcome(viewer.command("jstest/relay/0/set", {state: false}));
		assert.equal(got.code, "forbidden", `command: ${JSON.stringify(got)}`);
		assert.equal(relay.commands.length, before, "the device got nothing");
	});
});
