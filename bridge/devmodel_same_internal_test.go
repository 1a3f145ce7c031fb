package bridge

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/motehub/motehub/devices"
)

// fullDevice is a device with every field set, pointers and slices too.
func fullDevice() devices.Device {
	f := func(v float64) *float64 { return &v }
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	e := devices.Entity{ID: "t", Name: "T", Kind: devices.KindNumber, Type: devices.TypeNumber, Unit: "°C",
		DeviceClass: "temperature", StateClass: "measurement", Topic: "a/b/t", Field: "x.y",
		Value: json.RawMessage(`21.5`), Updated: at, Note: "n",
		Control: &devices.Control{Topic: "a/b/t/set", Min: f(1), Max: f(2), Step: f(0.5), Options: []string{"a", "b"}}}
	e2 := e
	e2.ID, e2.Value = "u", json.RawMessage(`"on"`)
	return devices.Device{ID: "json:a/b", Name: "b", Convention: devices.PlainJSON, Model: "m", Manufacturer: "mf",
		ViaDevice: "v", Area: "kitchen", Availability: devices.Online, Battery: f(90), LinkQuality: f(200),
		Updated: at, Entities: []devices.Entity{e, e2}}
}

// deepCopy copies v (a Device, or any value within one) with nothing shared.
func deepCopy(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		out.Set(v)
	case v.Kind() == reflect.Pointer:
		if !v.IsNil() {
			out.Set(reflect.New(v.Type().Elem()))
			out.Elem().Set(deepCopy(v.Elem()))
		}
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			out.Field(i).Set(deepCopy(v.Field(i)))
		}
	case v.Kind() == reflect.Slice:
		if !v.IsNil() {
			out.Set(reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
			for i := range v.Len() {
				out.Index(i).Set(deepCopy(v.Index(i)))
			}
		}
	default:
		out.Set(v)
	}
	return out
}

// mutate changes the n-th place of v that can differ (a field, a pointer
// or slice made nil, a slice shortened, an element), counting down n; it
// reports whether it reached it.
func mutate(t *testing.T, v reflect.Value, n *int) bool {
	hit := func() bool { *n--; return *n < 0 }
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		if hit() {
			v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Nanosecond)))
			return true
		}
	case v.Kind() == reflect.Pointer:
		if hit() {
			v.SetZero()
			return true
		}
		return mutate(t, v.Elem(), n)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if mutate(t, v.Field(i), n) {
				return true
			}
		}
	case v.Kind() == reflect.Slice:
		if hit() {
			v.SetZero() // nil
			return true
		}
		if hit() {
			v.Set(v.Slice(0, 0)) // empty, not nil
			return true
		}
		if hit() {
			v.Set(v.Slice(0, v.Len()-1))
			return true
		}
		for i := range v.Len() {
			if mutate(t, v.Index(i), n) {
				return true
			}
		}
	case v.Kind() == reflect.String:
		if hit() {
			v.SetString(v.String() + "x")
			return true
		}
	case v.Kind() == reflect.Float64:
		if hit() {
			v.SetFloat(v.Float() + 1)
			return true
		}
	case v.Kind() == reflect.Uint8:
		if hit() {
			v.SetUint(v.Uint() + 1)
			return true
		}
	default:
		t.Fatalf("mutate: a %s: teach sameDevice and this test about it", v.Type())
	}
	return false
}

// TestSameDeviceIsDeepEqual: sameDevice, which publish uses instead of
// reflect.DeepEqual, says the same for a copy and for every change of one
// field, pointer or slice of a device (found by reflection: a field added to
// Device, Entity or Control and not to sameDevice fails here).
func TestSameDeviceIsDeepEqual(t *testing.T) {
	d := fullDevice()
	if c := deepCopy(reflect.ValueOf(d)).Interface().(devices.Device); !sameDevice(&d, &c) || !reflect.DeepEqual(d, c) {
		t.Fatal("a copy differs")
	}
	changes := 0
	for i := 0; ; i++ {
		c := deepCopy(reflect.ValueOf(d))
		n := i
		if !mutate(t, c, &n) {
			break
		}
		changes++
		cd := c.Interface().(devices.Device)
		if sameDevice(&d, &cd) != reflect.DeepEqual(d, cd) {
			t.Errorf("change %d: sameDevice says %v, DeepEqual %v:\n%+v\n%+v", i, sameDevice(&d, &cd), reflect.DeepEqual(d, cd), d, cd)
		}
	}
	if changes < 60 {
		t.Fatalf("only %d changes tried", changes)
	}
}
