// Package motesim simulates motes: small wireless devices that speak MQTT, so
// that motehub shows a living system without hardware. Each mote is a real
// MQTT client (paho) with the client id "motesim-<mote>", named mote-1,
// mote-2, …; it reports an ASN counter, a temperature, a PIR event count, and
// has two relays (Clown.Talk style) and an LED (HARDWARIO style) that obey
// commands and echo their state, which is how a dashboard confirms a command.
//
// Topics, under Config.Prefix ("nodes") and the mote's name M:
//
//	M/boot                         {"fw":"1.0.0","reason":"power-on"}  QoS 1, after each connect ("reconnect" after the first)
//	M/asn                          123456789                            QoS 0, every ASNInterval; 100 slots per second
//	M/thermometer/0:1/temperature  [21.5,"°C"]                          QoS 0 retained, every TemperatureInterval
//	M/pir/-/event-count            42                                   QoS 0 retained, when it changes
//	M/relay/i2c0-3b, M/relay/i2c0-3c  {"state":false}                   QoS 1 retained, at connect and after each command
//	M/led/-/state                  false                                QoS 1 retained, at connect and after each command
//
// A mote subscribes (QoS 1) to M/relay/+/set, which takes {"state": bool},
// and to M/led/-/state/set, which takes true or false. It echoes every valid
// command on the state topic, even when the state did not change; it ignores
// an invalid one (logged at debug). After each (re)connect, and only once the
// broker has acknowledged its subscriptions, it publishes boot, then every
// state it retains. Telemetry waits for that boot and is not queued while the
// broker is away.
//
// # Devices of other conventions
//
// Next to the motes, Run simulates one device of each convention the hub
// understands, each an MQTT client of its own ("motesim-<name>") that speaks
// its convention as the real thing does, from each project's public
// documentation: the topics, payloads, QoS and retained flags are listed
// at the top of each device's file.
//
//   - homeassistant: a Home Assistant MQTT-discovery temperature sensor and
//     heater switch, one device (homeassistant.go);
//   - zigbee2mqtt: a Zigbee2MQTT bridge with an IKEA dimmable bulb
//     (zigbee2mqtt.go);
//   - tasmota: a Tasmota plug with energy metering (tasmota.go);
//   - homie: a Homie 4 thermostat (homie.go).
//
// Each announces itself (availability, retained discovery, states) after
// every connect, once its subscriptions are acknowledged, so a broker that
// restarts empty learns it again; obeys its commands and answers with the
// confirming message; reports every Config.ReportInterval; has the Will its
// convention gives it (offline, Offline, {"state":"offline"}, lost); and
// says so itself, retained, before a clean disconnect. Config.Devices
// picks them, Config.NoDevices turns them off, and [Filters] lists the
// topics an MQTT user needs to run them.
//
// [Run] keeps trying to reach the broker, so the hub may start after the
// simulator, and a mote heals by itself when the broker restarts.
//
// # Concurrency contract
//
// The devices of other conventions follow the same contract as the motes;
// the part about the MQTT connection is written once, in link.go, for both.
//
//   - [Run] starts one goroutine per mote. That goroutine owns all of the
//     mote's state (readings, relays, LED, random numbers): nothing else reads
//     or writes it, so there are no locks around it.
//   - paho's callbacks (connect, connection lost, connection notifications,
//     commands) never block: they parse, log, and hand over to the mote's
//     goroutine through a buffered channel without waiting (a command that
//     finds the buffer full is dropped and logged at warn) or through a
//     signal that coalesces repeated (re)connects. The connect callback also
//     queues the SUBSCRIBE; it waits for no SUBACK (the mote's goroutine
//     does), and paho bounds the queueing by its 1 s write timeout.
//   - The mote's goroutine publishes without waiting for acknowledgements. A
//     publish that races the loss of the connection can hold it for up to 1 s
//     (paho's write timeout), which is also the longest a stop takes, plus,
//     for a device, up to 500 ms for its goodbye to be written.
//   - [Run] returns once ctx is done and every mote's goroutine has ended, its
//     paho client is disconnected (DISCONNECT sent, connection closed), and
//     none of its callbacks is running or will run. A mote that is between
//     two attempts to reach the broker stops at once too, but paho cannot be
//     made to wait for its own retry goroutine: that goroutine finishes its
//     pause (at most Config.MaxReconnectInterval, or the 5 s connect timeout
//     of an attempt under way) after Run has returned, makes no further
//     attempt, and calls no code of this package.
package motesim
