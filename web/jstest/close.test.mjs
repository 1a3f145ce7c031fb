// close() ends everything: a program that closes its client (with a
// command on its way) exits by itself, on each transport, at once rather
// than when a timer of the client's runs out (the command waits up to a
// minute for its device).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import path from "node:path";
import test from "node:test";
import { promisify } from "node:util";

import { connect } from "../dashboard/motehub.js";
import { dataDir, startHub, waitFor } from "./harness.mjs";

const run = promisify(execFile);

test("a closed client leaves nothing running", {timeout: 60_000}, async (t) => {
	const server = await startHub(t, await dataDir("close"));
	const program = path.join(import.meta.dirname, "closed-client.mjs");
	const flags = process.execArgv.filter((f) => !f.startsWith("--test"));
	for (const transport of ["websocket", "sse", "poll"]) {
		const started = Date.now();
		const {stdout} = await run(process.execPath, [...flags, program, server.http, transport], {timeout: 20_000, killSignal: "SIGKILL"});
		const ms = Date.now() - started;
		assert.equal(stdout.trim(), "command: connection-lost", `${transport}: the command after close()`);
		assert.ok(ms < 10_000, `${transport}: the program ran ${ms} ms: something of the client kept running after close()`);
	}
});

// A hub that is shutting down answers long polls at once, empty: the
// client does not poll it as fast as it answers.
test("long polls answered at once and empty are not a loop", {timeout: 30_000}, async (t) => {
	let polls = 0;
	const server = http.createServer((req, res) => {
		if (req.url.startsWith("/api/poll")) polls++;
		res.writeHead(200, {"Content-Type": "application/json"});
		res.end(req.url.startsWith("/api/me") ? JSON.stringify({user: "anonymous", open: true, admin: false, rules: []}) : JSON.stringify({messages: [], id: "e-1", values: []}));
	});
	server.listen(0, "127.0.0.1");
	await once(server, "listening");
	t.after(() => server.close());
	const hub = connect(`http://127.0.0.1:${server.address().port}`, {storage: null, transports: ["poll"], state: false});
	t.after(() => hub.close());
	await waitFor(() => hub.status.state === "open", () => `not open: ${JSON.stringify(hub.status)}`);
	const before = polls;
	await new Promise((r) => setTimeout(r, 2000)); // a span to count in, not a wait for something
	hub.close();
	assert.ok(polls - before <= 4, `${polls - before} polls in 2 s`);
});
