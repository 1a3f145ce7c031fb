package devices

import (
	"slices"
	"strings"
)

// haAbbreviations are Home Assistant's abbreviated discovery keys
// (homeassistant/components/mqtt/abbreviations.py), those of the
// components the model reads and their common neighbours.
var haAbbreviations = map[string]string{
	"act_t":         "action_topic",
	"act_tpl":       "action_template",
	"atype":         "automation_type",
	"avty":          "availability",
	"avty_mode":     "availability_mode",
	"avty_t":        "availability_topic",
	"avty_tpl":      "availability_template",
	"bri_cmd_t":     "brightness_command_topic",
	"bri_cmd_tpl":   "brightness_command_template",
	"bri_scl":       "brightness_scale",
	"bri_stat_t":    "brightness_state_topic",
	"bri_tpl":       "brightness_template",
	"bri_val_tpl":   "brightness_value_template",
	"cmd_off_tpl":   "command_off_template",
	"cmd_on_tpl":    "command_on_template",
	"cmd_t":         "command_topic",
	"cmd_tpl":       "command_template",
	"cmps":          "components",
	"dev":           "device",
	"dev_cla":       "device_class",
	"e":             "encoding",
	"en":            "enabled_by_default",
	"ent_cat":       "entity_category",
	"ent_pic":       "entity_picture",
	"exp_aft":       "expire_after",
	"frc_upd":       "force_update",
	"ic":            "icon",
	"json_attr":     "json_attributes",
	"json_attr_t":   "json_attributes_topic",
	"json_attr_tpl": "json_attributes_template",
	"max":           "max",
	"min":           "min",
	"mode":          "mode",
	"name":          "name",
	"o":             "origin",
	"obj_id":        "object_id",
	"off_dly":       "off_delay",
	"on_cmd_type":   "on_command_type",
	"ops":           "options",
	"opt":           "optimistic",
	"p":             "platform",
	"pl_avail":      "payload_available",
	"pl_not_avail":  "payload_not_available",
	"pl_off":        "payload_off",
	"pl_on":         "payload_on",
	"pl_prs":        "payload_press",
	"pl_rst":        "payload_reset",
	"qos":           "qos",
	"ret":           "retain",
	"schema":        "schema",
	"stat_cla":      "state_class",
	"stat_off":      "state_off",
	"stat_on":       "state_on",
	"stat_t":        "state_topic",
	"stat_tpl":      "state_template",
	"stat_val_tpl":  "state_value_template",
	"step":          "step",
	"sug_dsp_prc":   "suggested_display_precision",
	"sup_clrm":      "supported_color_modes",
	"t":             "topic",
	"uniq_id":       "unique_id",
	"unit_of_meas":  "unit_of_measurement",
	"val_tpl":       "value_template",
}

// haDeviceAbbreviations are the abbreviated keys of a device block.
var haDeviceAbbreviations = map[string]string{
	"cu":     "configuration_url",
	"cns":    "connections",
	"ids":    "identifiers",
	"name":   "name",
	"mf":     "manufacturer",
	"mdl":    "model",
	"mdl_id": "model_id",
	"hw":     "hw_version",
	"sw":     "sw_version",
	"sa":     "suggested_area",
	"sn":     "serial_number",
}

// haFullNames are the unabbreviated keys, so that reading a config
// needs no copy of them.
var haFullNames = func() map[string]string {
	names := map[string]string{"~": "~", "device": "device", "platform": "platform"}
	for _, abbreviations := range []map[string]string{haAbbreviations, haDeviceAbbreviations} {
		for _, full := range abbreviations {
			names[full] = full
		}
	}
	return names
}()

// sortEntities orders entity specs by id.
func sortEntities(es []entitySpec) {
	slices.SortStableFunc(es, func(a, b entitySpec) int { return strings.Compare(a.ID, b.ID) })
}
