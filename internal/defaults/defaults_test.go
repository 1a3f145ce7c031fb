package defaults

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSet(t *testing.T) {
	var unset, set time.Duration = 0, time.Second
	Set(&unset, time.Minute)
	Set(&set, time.Minute)
	if unset != time.Minute || set != time.Second {
		t.Errorf("a zero value became %v (want the default, 1m0s); one given stayed %v (want 1s)", unset, set)
	}
	name := ""
	Set(&name, "hub")
	if name != "hub" {
		t.Errorf("an empty string became %q, want the default", name)
	}
}
