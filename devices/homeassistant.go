package devices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Home Assistant MQTT discovery
// (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery): a
// retained config on homeassistant/<component>/[<node_id>/]<object_id>/config
// declares one entity (or, on homeassistant/device/<object_id>/config, a
// device with its components in "cmps"), with abbreviated keys, the ~ base
// topic, its device (grouped by identifiers), availability and templates.
// An empty config removes what the topic declared.

// haPrefix is Home Assistant's discovery prefix.
const haPrefix = "homeassistant"

// errHAConfig is a config the model cannot read.
var errHAConfig = errors.New("not a Home Assistant discovery config")

// homeAssistant is the Home Assistant discovery convention. It keeps no
// state: each config is its own source.
type homeAssistant struct{}

func (homeAssistant) handle(m *Model, msg Message) (Changes, bool) {
	component, node, object, ok := haDiscoveryTopic(msg.Topic)
	if !ok {
		return Changes{}, msg.Topic == haPrefix+"/status" // Home Assistant's own birth message
	}
	source := HomeAssistant + ":" + msg.Topic
	if len(bytes.TrimSpace(msg.Payload)) == 0 {
		return m.declare(source, nil), true
	}
	if m.oversized(msg) {
		return Changes{}, true
	}
	decls, err := haDeclarations(component, node, object, msg.Payload)
	if err != nil {
		m.malformed()
		return Changes{}, true
	}
	return m.declare(source, decls), true
}

// haDiscoveryTopic splits homeassistant/<component>/[<node>/]<object>/config.
func haDiscoveryTopic(topic string) (component, node, object string, ok bool) {
	if !strings.HasPrefix(topic, haPrefix+"/") || !strings.HasSuffix(topic, "/config") {
		return "", "", "", false // most topics: not split, which allocates
	}
	levels := strings.Split(topic, "/")
	if levels[0] != haPrefix || levels[len(levels)-1] != "config" {
		return "", "", "", false
	}
	switch len(levels) {
	case 4:
		component, object = levels[1], levels[2]
	case 5:
		component, node, object = levels[1], levels[2], levels[3]
	default:
		return "", "", "", false
	}
	if component == "" || object == "" || strings.ContainsFunc(component, func(r rune) bool { return (r < 'a' || r > 'z') && r != '_' }) {
		return "", "", "", false
	}
	return component, node, object, true
}

// A haConfig is a discovery config's members with their keys
// unabbreviated and its ~ expanded, in order: of a key given twice, the
// last counts. A config has a few dozen members: a list is quicker to make
// and to search than a map.
type haConfig []haMember

type haMember struct {
	key   string
	value json.RawMessage
}

// haMembers reads a JSON object (valid JSON) as a haConfig, with keys
// unabbreviated by abbreviations (nil: none); ok is false when it is no
// object.
func haMembers(raw []byte, abbreviations map[string]string) (haConfig, bool) {
	c := make(haConfig, 0, min(32, bytes.Count(raw, []byte(`":`)))) // at least its members, but for nested ones
	ok := eachMember(raw, func(k []byte, v json.RawMessage) {
		key, found := abbreviations[string(k)]
		if !found {
			if key, found = haFullNames[string(k)]; !found {
				key = string(k)
			}
		}
		c = append(c, haMember{key, v})
	})
	return c, ok
}

// get is the value of key, the last one given.
func (c haConfig) get(key string) (json.RawMessage, bool) {
	for i := len(c) - 1; i >= 0; i-- {
		if c[i].key == key {
			return c[i].value, true
		}
	}
	return nil, false
}

// set gives key a value: the last one given, else a new member.
func (c *haConfig) set(key string, value json.RawMessage) {
	for i := len(*c) - 1; i >= 0; i-- {
		if (*c)[i].key == key {
			(*c)[i].value = value
			return
		}
	}
	*c = append(*c, haMember{key, value})
}

// each calls fn with every member in order, of a key given twice the last.
func (c haConfig) each(fn func(key string, value json.RawMessage)) {
	for i, mb := range c {
		if !slices.ContainsFunc(c[i+1:], func(later haMember) bool { return later.key == mb.key }) {
			fn(mb.key, mb.value)
		}
	}
}

// MarshalJSON writes the config as a JSON object.
func (c haConfig) MarshalJSON() ([]byte, error) {
	out := []byte{'{'}
	c.each(func(key string, value json.RawMessage) {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, stringJSON(key)...)
		out = append(out, ':')
		out = append(out, value...)
	})
	return append(out, '}'), nil
}

// haDeclarations reads one discovery payload.
func haDeclarations(component, node, object string, payload []byte) ([]declaration, error) {
	if !json.Valid(payload) {
		return nil, fmt.Errorf("%w: not JSON", errHAConfig)
	}
	c, ok := haMembers(payload, haAbbreviations)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", errHAConfig)
	}
	c = haExpand(c, "")
	if component != "device" {
		d, ok, err := haDeclaration(component, node, object, c)
		if err != nil || !ok {
			return nil, err
		}
		return []declaration{d}, nil
	}
	// Device-based discovery: the shared options, and one entity per component.
	raw, _ := c.get("components")
	components, ok := haMembers(raw, nil)
	if !ok || len(components) == 0 {
		return nil, errHAConfig
	}
	var out []declaration
	var failed error
	components.each(func(id string, raw json.RawMessage) {
		if failed != nil {
			return
		}
		cmp, ok := haMembers(raw, haAbbreviations)
		if !ok {
			failed = errHAConfig
			return
		}
		var merged haConfig
		for _, mb := range c {
			if mb.key != "components" {
				merged = append(merged, mb)
			}
		}
		merged = append(merged, haExpand(cmp, c.str("~"))...)
		d, ok, err := haDeclaration(merged.str("platform"), node, id, merged)
		switch {
		case err != nil:
			failed = err
		case ok:
			out = append(out, d)
		}
	})
	if failed != nil {
		return nil, failed
	}
	return mergeDeclarations(out), nil
}

// mergeDeclarations joins declarations of one device into one, in the
// order of their entities' ids.
func mergeDeclarations(ds []declaration) []declaration {
	var out []declaration
	for _, d := range ds {
		i := 0
		for i < len(out) && out[i].device.ID != d.device.ID {
			i++
		}
		if i == len(out) {
			out = append(out, d)
			continue
		}
		out[i].entities = append(out[i].entities, d.entities...)
		out[i].availability = append(out[i].availability, d.availability...)
	}
	for _, d := range out {
		sortEntities(d.entities)
	}
	return out
}

// haExpand expands ~ in a config's topics (base is an outer config's ~,
// for device-based discovery), in place.
func haExpand(c haConfig, base string) haConfig {
	if b := c.str("~"); b != "" {
		base = b
	}
	if base == "" {
		return c
	}
	for i, mb := range c {
		if mb.key == "topic" || strings.HasSuffix(mb.key, "_topic") {
			if s, ok := jsonString(mb.value); ok {
				c[i].value = stringJSON(haBase(s, base))
			}
		}
	}
	if list, ok := c.list("availability"); ok {
		for _, item := range list {
			if s := item.str("topic"); s != "" {
				item.set("topic", stringJSON(haBase(s, base)))
			}
		}
		b, _ := json.Marshal(list) // raw values marshal back as they were
		c.set("availability", b)
	}
	return c
}

// haBase expands ~ at the start or end of a topic.
func haBase(topic, base string) string {
	if rest, ok := strings.CutPrefix(topic, "~"); ok {
		return base + rest
	}
	if rest, ok := strings.CutSuffix(topic, "~"); ok {
		return rest + base
	}
	return topic
}

func jsonString(raw json.RawMessage) (string, bool) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw[1:n-1], '\\') < 0 && bytes.IndexByte(raw[1:n-1], '"') < 0 {
		return string(raw[1 : n-1]), true // no escapes: the common case, without decoding
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// str is a key's value as text: a string, or a number or boolean as written.
func (c haConfig) str(key string) string {
	raw, ok := c.get(key)
	if !ok {
		return ""
	}
	if s, ok := jsonString(raw); ok {
		return s
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] != '{' && raw[0] != '[' && string(raw) != "null" {
		return string(raw)
	}
	return ""
}

// strOr is str, or def when the key is absent.
func (c haConfig) strOr(key, def string) string {
	if _, ok := c.get(key); !ok {
		return def
	}
	return c.str(key)
}

// num is a key's number, or nil.
func (c haConfig) num(key string) *float64 {
	raw, ok := c.get(key)
	if !ok {
		return nil
	}
	f, ok := parseNumber(raw)
	if !ok {
		return nil
	}
	return &f
}

// numOr is num, or def.
func (c haConfig) numOr(key string, def float64) *float64 {
	if f := c.num(key); f != nil {
		return f
	}
	return &def
}

// list is a key's list of objects, unabbreviated.
func (c haConfig) list(key string) ([]haConfig, bool) {
	raw, _ := c.get(key)
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	out := make([]haConfig, 0, len(items))
	for _, raw := range items {
		it, ok := haMembers(raw, haAbbreviations)
		if !ok {
			return nil, false
		}
		out = append(out, haExpand(it, ""))
	}
	return out, true
}

// object is a key's object, with the device block's keys unabbreviated.
func (c haConfig) object(key string) haConfig {
	raw, _ := c.get(key)
	obj, ok := haMembers(raw, haDeviceAbbreviations)
	if !ok {
		return nil
	}
	return obj
}

// strings is a key's string or list of strings.
func (c haConfig) strings(key string) []string {
	raw, _ := c.get(key)
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	if s := c.str(key); s != "" {
		return []string{s}
	}
	return nil
}

// haDeclaration is the declaration of one entity's config: ok false for a
// component with nothing to show.
func haDeclaration(component, node, object string, c haConfig) (declaration, bool, error) {
	var d declaration
	d.device = haDeviceOf(node, object, c)
	d.availability, d.availabilityMode = haAvailability(c)
	entities, err := haEntities(component, object, c, d.device.Name)
	if err != nil || len(entities) == 0 {
		return d, false, err
	}
	d.entities = entities
	return d, true, nil
}

// haDeviceOf is the device a config belongs to: its device block grouped by
// its first identifier (or connection), else a device of its own named by
// its unique_id or its topic.
func haDeviceOf(node, object string, c haConfig) Device {
	dev := c.object("device")
	d := Device{Convention: HomeAssistant}
	native := ""
	if ids := dev.strings("identifiers"); len(ids) > 0 {
		native = ids[0]
	} else {
		var conns [][]string
		if raw, _ := dev.get("connections"); json.Unmarshal(raw, &conns) == nil && len(conns) > 0 && len(conns[0]) == 2 {
			native = conns[0][0] + "_" + conns[0][1]
		}
	}
	if native != "" {
		d.Name = dev.str("name")
		d.Model = dev.str("model")
		d.Manufacturer = dev.str("manufacturer")
		d.Area = dev.str("suggested_area")
		if via := dev.str("via_device"); via != "" {
			d.ViaDevice = HomeAssistant + ":" + via
		}
	} else {
		native = c.str("unique_id")
		if native == "" {
			native = object
			if node != "" {
				native = node + "_" + object
			}
		}
		d.Name = c.str("name")
	}
	d.ID = HomeAssistant + ":" + native
	return d
}

// haAvailability reads availability_topic or the availability list, and
// availability_mode.
func haAvailability(c haConfig) ([]availabilitySpec, string) {
	var out []availabilitySpec
	add := func(topic, on, off, tpl string) {
		t, ok := parseHATemplate(tpl)
		if topic == "" || !ok || t.filter != "" {
			return // a template the model does not evaluate: no availability rather than a wrong one
		}
		out = append(out, availabilitySpec{Topic: topic, Field: t.path, Online: on, Offline: off})
	}
	on, off := c.strOr("payload_available", "online"), c.strOr("payload_not_available", "offline")
	add(c.str("availability_topic"), on, off, c.str("availability_template"))
	if list, ok := c.list("availability"); ok {
		for _, it := range list {
			add(it.str("topic"), it.strOr("payload_available", "online"), it.strOr("payload_not_available", "offline"), it.str("value_template"))
		}
	}
	mode := c.str("availability_mode")
	if mode != "all" && mode != "any" {
		mode = "latest"
	}
	return out, mode
}

// haEntities are the entities of one config.
func haEntities(component, object string, c haConfig, deviceName string) ([]entitySpec, error) {
	e := entitySpec{Entity: Entity{
		ID:          object,
		Name:        c.str("name"),
		DeviceClass: c.str("device_class"),
		StateClass:  c.str("state_class"),
		Unit:        c.str("unit_of_measurement"),
		Topic:       c.str("state_topic"),
	}}
	if e.Name == "" {
		raw, ok := c.get("name")
		switch {
		case ok && string(bytes.TrimSpace(raw)) == "null" && deviceName != "":
			e.Name = deviceName // name null: the device's main feature
		case e.DeviceClass != "":
			e.Name = humanise(e.DeviceClass) // as Home Assistant names it
		default:
			e.Name = object
		}
	}
	switch component {
	case "sensor":
		e.Kind, e.Type = KindSensor, TypeText
		if e.Unit != "" || e.StateClass != "" || haNumericClass(e.DeviceClass) {
			e.Type = TypeNumber
		}
		if e.DeviceClass == "enum" {
			e.Type = TypeEnum
		}
		haRead(&e, c.str("value_template"), nil)
		return []entitySpec{e}, nil
	case "binary_sensor":
		e.Kind, e.Type = KindBinarySensor, TypeBoolean
		on, off := c.strOr("payload_on", "ON"), c.strOr("payload_off", "OFF")
		haRead(&e, c.str("value_template"), onOffText(on, off))
		return []entitySpec{e}, nil
	case "switch":
		e.Kind, e.Type = KindSwitch, TypeBoolean
		return haSwitch(e, c, "state_topic", "value_template")
	case "light":
		return haLight(e, c)
	case "number":
		e.Kind, e.Type = KindNumber, TypeNumber
		return haNumber(e, c)
	case "select":
		e.Kind, e.Type = KindSelect, TypeEnum
		return haSelect(e, c)
	case "button":
		return haButton(e, c)
	}
	// Another component: its state shown raw, if it has one.
	if e.Topic == "" {
		return nil, nil
	}
	e.Kind, e.Type = KindText, TypeJSON
	e.Note = "Home Assistant component " + component + " not understood: state shown raw"
	e.read = rawValue
	return []entitySpec{e}, nil
}

// haNumericClass reports whether a sensor's device class is a measurement.
func haNumericClass(class string) bool {
	switch class {
	case "", "enum", "timestamp", "date":
		return false
	}
	return true
}

// onOffText reads a rendered state as on or off by exact payloads.
func onOffText(on, off string) func(string) (json.RawMessage, bool) {
	return func(s string) (json.RawMessage, bool) {
		switch s {
		case on:
			return boolJSON(true), true
		case off:
			return boolJSON(false), true
		}
		return nil, false
	}
}

// haRead sets how an entity reads its state through a value template:
// rendered, then by convert (nil: normalised to its Type). A template the
// model does not evaluate makes the entity show the raw payload.
func haRead(e *entitySpec, tpl string, convert func(string) (json.RawMessage, bool)) (haTemplate, bool) {
	t, ok := parseHATemplate(tpl)
	if !ok {
		e.Type, e.Note = TypeJSON, noteRawTemplate
		e.read = rawValue
		return t, false
	}
	e.Field, _ = t.field()
	typ := e.Type
	e.read = func(payload []byte) (json.RawMessage, bool) {
		s, ok := t.render(payload)
		if !ok {
			return nil, false
		}
		if convert != nil {
			return convert(s)
		}
		return normalise(typ, stringJSON(s))
	}
	return t, true
}

// rawValue is a payload as it is: its JSON, else its text as a JSON string.
func rawValue(payload []byte) (json.RawMessage, bool) {
	if v, ok := compactJSON(payload); ok {
		return v, true
	}
	if len(payload) > maxValueBytes {
		return nil, false
	}
	return stringJSON(string(payload)), true
}

// haCommand sets an entity's control: its command topic, and how a value
// becomes a payload through command_template (text) and what confirms it.
// A command template the model does not evaluate leaves it read-only.
// fromText reads the text a command template was filled with back as a
// value, for ConfirmFor.
func haCommand(e *entitySpec, c haConfig, topicKey, templateKey string, text func(json.RawMessage) string, confirm func(json.RawMessage) Confirm, fromText func(string) (json.RawMessage, bool)) {
	topic := c.str(topicKey)
	if topic == "" {
		return
	}
	tpl, ok := parseHACommandTemplate(c.str(templateKey))
	if !ok {
		e.Note = joinNotes(e.Note, "command template not evaluated: not commandable here")
		return
	}
	if e.Control == nil {
		e.Control = &Control{}
	}
	e.Control.Topic = topic
	e.encode = func(v json.RawMessage) ([]byte, Confirm, error) {
		return tpl.apply(text(v)), confirm(v), nil
	}
	e.parseCommand = func(payload []byte) (json.RawMessage, bool) {
		s, ok := tpl.unapply(payload)
		if !ok {
			return nil, false
		}
		return fromText(s)
	}
}

func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// haTextConfirm is confirmed by the state topic showing want, when the
// state template is one a Confirm can compare.
func haTextConfirm(stateTopic string, t haTemplate, evaluated bool, want string) Confirm {
	field, comparable := t.field()
	if stateTopic == "" || !evaluated || !comparable {
		return Confirm{}
	}
	return confirmText(stateTopic, field, want)
}

// haSwitch is a switch (or a default-schema light's state): payload_on/off
// commands, state_on/off states.
func haSwitch(e entitySpec, c haConfig, stateKey, tplKey string) ([]entitySpec, error) {
	e.Topic = c.str(stateKey)
	on, off := c.strOr("payload_on", "ON"), c.strOr("payload_off", "OFF")
	stateOn, stateOff := c.strOr("state_on", on), c.strOr("state_off", off)
	t, evaluated := haRead(&e, c.str(tplKey), onOffText(stateOn, stateOff))
	if e.Topic == "" {
		e.read = nil
	}
	haCommand(&e, c, "command_topic", "command_template",
		func(v json.RawMessage) string { return pick(string(v) == "true", on, off) },
		func(v json.RawMessage) Confirm {
			return haTextConfirm(e.Topic, t, evaluated, pick(string(v) == "true", stateOn, stateOff))
		}, onOffText(on, off))
	return []entitySpec{e}, nil
}

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// haLight is a light of the default schema (state and brightness topics of
// their own) or the json schema ({"state":"ON","brightness":n}).
func haLight(e entitySpec, c haConfig) ([]entitySpec, error) {
	e.Kind, e.Type = KindLight, TypeBoolean
	scale := *c.numOr("brightness_scale", 255)
	zero, step := 0.0, 1.0
	switch schema := c.strOr("schema", "default"); schema {
	case "default", "basic":
		out, _ := haSwitch(e, c, "state_topic", "state_value_template")
		if c.str("brightness_command_topic") == "" && c.str("brightness_state_topic") == "" {
			return out, nil
		}
		b := entitySpec{Entity: Entity{ID: e.ID + "_brightness", Name: e.Name + " brightness", Kind: KindNumber, Type: TypeNumber,
			Topic: c.str("brightness_state_topic")}}
		t, evaluated := haRead(&b, c.str("brightness_value_template"), nil)
		if b.Topic == "" {
			b.read = nil
		}
		haCommand(&b, c, "brightness_command_topic", "brightness_command_template",
			func(v json.RawMessage) string { return string(v) },
			func(v json.RawMessage) Confirm { return haTextConfirm(b.Topic, t, evaluated, string(v)) }, numberText)
		if b.Control != nil {
			b.Control.Min, b.Control.Max, b.Control.Step = &zero, &scale, &step
		}
		return append(out, b), nil
	case "json":
		topic, cmd := c.str("state_topic"), c.str("command_topic")
		e.Topic, e.Field = topic, "state"
		e.read = func(p []byte) (json.RawMessage, bool) {
			raw, ok := jsonField(p, "state")
			if !ok {
				return nil, false
			}
			return onOffText("ON", "OFF")(textOf(raw))
		}
		if topic == "" {
			e.Field, e.read = "", nil
		}
		if cmd != "" {
			e.Control = &Control{Topic: cmd}
			e.encode = func(v json.RawMessage) ([]byte, Confirm, error) {
				state := stringJSON(pick(string(v) == "true", "ON", "OFF"))
				var confirm Confirm
				if topic != "" {
					confirm = confirmJSON(topic, "state", state)
				}
				return []byte(`{"state":` + string(state) + `}`), confirm, nil
			}
		}
		out := []entitySpec{e}
		if !haJSONBrightness(c) {
			return out, nil
		}
		b := entitySpec{Entity: Entity{ID: e.ID + "_brightness", Name: e.Name + " brightness", Kind: KindNumber, Type: TypeNumber, Topic: topic}}
		if topic != "" {
			b.Field = "brightness"
		}
		if cmd != "" {
			b.Control = &Control{Topic: cmd, Min: &zero, Max: &scale, Step: &step}
			b.encode = func(v json.RawMessage) ([]byte, Confirm, error) {
				var confirm Confirm
				if topic != "" {
					confirm = confirmJSON(topic, "brightness", v)
				}
				return []byte(`{"state":"ON","brightness":` + string(v) + `}`), confirm, nil
			}
		}
		return append(out, b), nil
	default:
		e.Type, e.Note = TypeJSON, "light schema "+schema+" not understood: state shown raw"
		if e.Topic == "" {
			return nil, nil
		}
		e.read = rawValue
		return []entitySpec{e}, nil
	}
}

// haJSONBrightness reports whether a json-schema light has brightness: the
// old brightness flag, or a color mode other than onoff.
func haJSONBrightness(c haConfig) bool {
	if c.str("brightness") == "true" {
		return true
	}
	for _, mode := range c.strings("supported_color_modes") {
		if mode != "onoff" {
			return true
		}
	}
	return false
}

// haNumber is a number: min (default 1), max (default 100), step (default 1).
func haNumber(e entitySpec, c haConfig) ([]entitySpec, error) {
	t, evaluated := haRead(&e, c.str("value_template"), nil)
	if e.Topic == "" {
		e.read = nil
	}
	e.Control = &Control{Min: c.numOr("min", 1), Max: c.numOr("max", 100), Step: c.numOr("step", 1)}
	haCommand(&e, c, "command_topic", "command_template",
		func(v json.RawMessage) string { return string(v) },
		func(v json.RawMessage) Confirm { return haTextConfirm(e.Topic, t, evaluated, string(v)) }, numberText)
	if e.Control.Topic == "" {
		e.Control = nil
	}
	return []entitySpec{e}, nil
}

// haSelect is a select of options.
func haSelect(e entitySpec, c haConfig) ([]entitySpec, error) {
	options := c.strings("options")
	if len(options) == 0 {
		return nil, errHAConfig
	}
	t, evaluated := haRead(&e, c.str("value_template"), nil)
	if e.Topic == "" {
		e.read = nil
	}
	e.Control = &Control{Options: options}
	haCommand(&e, c, "command_topic", "command_template",
		func(v json.RawMessage) string { return textOf(v) },
		func(v json.RawMessage) Confirm { return haTextConfirm(e.Topic, t, evaluated, textOf(v)) },
		func(s string) (json.RawMessage, bool) { return stringJSON(s), true })
	if e.Control.Topic == "" {
		e.Control = nil
	}
	return []entitySpec{e}, nil
}

// haButton is a button: payload_press (default PRESS) on its command topic.
func haButton(e entitySpec, c haConfig) ([]entitySpec, error) {
	e.Kind, e.Type, e.Topic, e.Unit = KindButton, TypeText, "", ""
	press := c.strOr("payload_press", "PRESS")
	haCommand(&e, c, "command_topic", "command_template",
		func(json.RawMessage) string { return press },
		func(json.RawMessage) Confirm { return Confirm{} },
		func(s string) (json.RawMessage, bool) { return json.RawMessage("null"), s == press })
	if e.Control == nil {
		return nil, errHAConfig
	}
	return []entitySpec{e}, nil
}

// humanise is a device class as a name: "carbon_dioxide" is "Carbon dioxide".
func humanise(class string) string {
	s := strings.ReplaceAll(class, "_", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

// numberText reads a number written as text.
func numberText(s string) (json.RawMessage, bool) {
	f, ok := parseNumber([]byte(s))
	if !ok {
		return nil, false
	}
	return numberJSON(f), true
}
