package devices

import "strings"

// HARDWARIO / Clown.Talk: node/<id>/<sensor>/<channel>/<quantity> (and
// nodes/<id>/..., the layout of Clown.Talk motes) is one device per <id>,
// grouped like plain JSON (see plainjson.go), with units and device
// classes from the quantity. Commands go to <topic>/set: relays and LEDs
// echo their state on <topic> (node/x/relay/-/state/set, then
// node/x/relay/-/state).

// hardwarioQuantities are the units and device classes of HARDWARIO's
// quantities, by the last level of a topic.
var hardwarioQuantities = map[string]struct{ unit, class string }{
	"temperature":       {"°C", "temperature"},
	"relative-humidity": {"%", "humidity"},
	"illuminance":       {"lux", "illuminance"},
	"pressure":          {"Pa", "pressure"},
	"altitude":          {"m", "distance"},
	"voltage":           {"V", "voltage"},
	"concentration":     {"ppm", "carbon_dioxide"},
	"co2":               {"ppm", "carbon_dioxide"},
	"tvoc":              {"ppb", "volatile_organic_compounds_parts"},
	"acceleration":      {"g", ""},
	"moisture":          {"%", "moisture"},
	"percentage":        {"%", ""},
	"rssi":              {"dBm", "signal_strength"},
	"current":           {"A", "current"},
	"power":             {"W", "power"},
}

// hardwarioAnnotate gives an entity of a HARDWARIO device its unit and
// device class from its quantity, unless the payload named a unit.
func hardwarioAnnotate(e *entitySpec, rest, path string) {
	quantity := lastLevel(rest, "/")
	if path != "" {
		quantity = lastLevel(path, ".")
	}
	q, ok := hardwarioQuantities[quantity]
	if !ok || e.Type != TypeNumber {
		return
	}
	if e.Unit == "" {
		e.Unit = q.unit
	}
	e.DeviceClass = q.class
	if quantity == "percentage" && strings.HasPrefix(rest, "battery/") {
		e.DeviceClass = "battery"
	}
	if e.DeviceClass != "" {
		e.StateClass = "measurement"
	}
}
