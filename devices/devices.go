package devices

import (
	"encoding/json"
	"errors"
	"time"
)

// Message is one MQTT message the hub saw, retained ones included.
type Message struct {
	Topic    string
	Payload  []byte // read only; the model keeps its own copies
	Retained bool
	Time     time.Time
	// JSON says that Payload is valid JSON (the hub's records are): the
	// model reads it without checking it again. False: it may be anything.
	JSON bool
}

// Conventions a device is understood by (Device.Convention).
const (
	HomeAssistant = "homeassistant" // MQTT discovery: homeassistant/<component>/[<node>/]<object>/config
	Homie         = "homie"         // homie/<device>/$... (3, 4 and 5)
	Zigbee2MQTT   = "zigbee2mqtt"   // zigbee2mqtt/bridge/devices and zigbee2mqtt/<name>
	Tasmota       = "tasmota"       // tasmota/discovery/<mac>/config and tele/stat/cmnd
	HARDWARIO     = "hardwario"     // node/<id>/<sensor>/<channel>/<quantity>, nodes/<base>/<type>/<address>
	PlainJSON     = "json"          // anything else: the prefix/device/rest heuristic
)

// Availability of a device (Device.Availability).
const (
	Online  = "online"
	Offline = "offline"
	Unknown = "unknown"
)

// Entity kinds (Entity.Kind): what the entity is to a person.
const (
	KindSensor       = "sensor"        // a reading
	KindBinarySensor = "binary_sensor" // an on/off reading
	KindSwitch       = "switch"        // on/off, commandable
	KindLight        = "light"         // on/off, commandable (brightness is a KindNumber entity of the same device)
	KindNumber       = "number"        // a number, commandable within Control.Min..Max
	KindSelect       = "select"        // one of Control.Options, commandable
	KindButton       = "button"        // an action with no state
	KindText         = "text"          // anything else, shown as text
)

// Value types (Entity.Type): the JSON type of Entity.Value.
const (
	TypeNumber  = "number"  // a JSON number
	TypeBoolean = "boolean" // true / false (ON/OFF, payload_on/off, state_on/off normalised)
	TypeEnum    = "enum"    // a JSON string, one of Control.Options or a known set
	TypeText    = "text"    // a JSON string
	TypeJSON    = "json"    // any JSON value, shown raw (Entity.Note says why)
)

// A Device is one thing a person would name: a plug, a bulb, a mote.
// Devices are values: the model hands out copies.
type Device struct {
	ID           string    `json:"id"`         // "<convention>:<native id>": stable across restarts
	Name         string    `json:"name"`       // what a person calls it (friendly name, $name, discovery name), else the native id
	Convention   string    `json:"convention"` // one of the constants above
	Model        string    `json:"model,omitempty"`
	Manufacturer string    `json:"manufacturer,omitempty"`
	ViaDevice    string    `json:"via_device,omitempty"`  // the id of the device it talks through (a Zigbee coordinator, a bridge)
	Area         string    `json:"area,omitempty"`        // the room or area it is in, when the device says (Home Assistant's suggested_area)
	Availability string    `json:"availability"`          // Online, Offline or Unknown
	Battery      *float64  `json:"battery,omitempty"`     // percent, when the device reports it
	LinkQuality  *float64  `json:"linkquality,omitempty"` // as the device reports it (Zigbee LQI 0-255, Wi-Fi RSSI %)
	Updated      time.Time `json:"updated,omitzero"`      // the last message about the device
	Entities     []Entity  `json:"entities"`              // ordered as the device declares them, else by id
}

// An Entity is one value or control of a device.
type Entity struct {
	ID          string          `json:"id"`   // unique within its device
	Name        string          `json:"name"` // for people
	Kind        string          `json:"kind"` // Kind...
	Type        string          `json:"type"` // Type...
	Unit        string          `json:"unit,omitempty"`
	DeviceClass string          `json:"device_class,omitempty"` // Home Assistant's device classes (temperature, battery, ...)
	StateClass  string          `json:"state_class,omitempty"`  // measurement, total, total_increasing
	Topic       string          `json:"topic,omitempty"`        // the MQTT topic its state arrives on ("" for a button)
	Field       string          `json:"field,omitempty"`        // the dotted JSON path of its value within that payload ("" for the whole payload)
	Value       json.RawMessage `json:"value,omitempty"`        // the last value, normalised to Type; absent until one arrives
	Updated     time.Time       `json:"updated,omitzero"`       // when Value last arrived
	Note        string          `json:"note,omitempty"`         // why the value is shown raw (a template the model does not evaluate), or other caveats
	Control     *Control        `json:"control,omitempty"`      // nil for read-only entities
}

// A Control says how an entity is commanded. Model.Command encodes a value
// into the message the device expects.
type Control struct {
	Topic   string   `json:"topic"` // the MQTT command topic
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Step    *float64 `json:"step,omitempty"`
	Options []string `json:"options,omitempty"` // for KindSelect
}

// A Command is a value encoded for its device: publish Payload on Topic
// and wait for Confirm.
type Command struct {
	Topic   string
	Payload []byte // the bytes the device expects: bare text ON for Home Assistant's payload_on, {"state":"ON"} for Zigbee2MQTT
	Confirm Confirm
}

// A Confirm says which message confirms a command. A zero Confirm (no
// Topic) means nothing confirms it (a button): it is done when published.
type Confirm struct {
	Topic string // the topic the device reports its state on
	Field string // the dotted JSON path of the state in that payload; "" for the whole payload
	want  string // the state asked for, canonical (see canonical)
	text  bool   // compare as text (Home Assistant state_on/off, Tasmota ON/OFF), else as JSON
}

// Errors of Model.Command. The bridge maps them to Clown.Talk error codes.
var (
	ErrUnknownDevice = errors.New("no such device")
	ErrUnknownEntity = errors.New("the device has no such entity")
	ErrNotControl    = errors.New("the entity cannot be commanded")
	ErrBadValue      = errors.New("the value does not suit the entity")
	ErrOffline       = errors.New("the device is offline")
)

// Changes says which devices one message changed.
type Changes struct {
	Updated []string // ids of devices added or changed (structure, availability or a value)
	Removed []string // ids of devices that are gone
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return len(c.Updated) == 0 && len(c.Removed) == 0 }
