// A program for close.test.mjs: it connects motehub.js to the hub at
// argv[2] over the transport argv[3], sends a command (to nobody) the moment
// the session opens, and closes the client at once; it prints how the
// command ended. Node exits when nothing is left to run: a client that
// keeps a timer, a socket or a loop after close() keeps it alive.

import { connect } from "../dashboard/motehub.js";

const [addr, transport] = process.argv.slice(2);
const hub = connect(`http://${addr}`, {WebSocket: globalThis.WebSocket, storage: null, transports: [transport], heartbeat: 2000, commandTimeout: 60_000});
hub.on("status", (s) => {
	if (s.state !== "open") return;
	hub.command("jstest/nobody/set", {state: true}).then(
		() => console.log("command: ok"),
		(err) => console.log(`command: ${err.code}`));
	hub.close();
});
