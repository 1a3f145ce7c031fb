// Package devices is the device model: pure functions of the messages the
// hub sees (retained discovery messages included) to devices, with names,
// availability, battery, and entities (values with units and device classes,
// and controls that know their command topic, how to encode a command, and
// which message confirms it).
//
// It understands Home Assistant MQTT discovery, Homie 3/4/5, Zigbee2MQTT,
// Tasmota, HARDWARIO / Clown.Talk, and, for anything else, plain JSON
// (one entity per leaf) grouped by the prefix/device/rest heuristic.
//
// The package imports only the standard library and topics. A Model is
// not safe for concurrent use: its owner (the bridge) calls it from one
// goroutine at a time, and hands out the copies Devices returns.
package devices
