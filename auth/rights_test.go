package auth

import (
	"strings"
	"testing"
)

func TestRights(t *testing.T) {
	u, err := Parse([]byte(`
[users.alice]
read = ["nodes/#"]
write = ["nodes/+/relay/+/set"]

[users.ops]
readwrite = ["#", "$SYS/#"]

[users.boss]
read = ["#"]
admin = true

[users.anonymous]
read = ["public/#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := New(u)
	for _, c := range []struct {
		id    Identity
		admin bool
		rules int
	}{
		{"alice", false, 2},
		{"ops", true, 2},  // reads all of $SYS
		{"boss", true, 1}, // the flag
		{Anonymous, false, 1},
		{"nobody", false, 0},
	} {
		r := a.Rights(c.id)
		if r.Open || r.Admin != c.admin || len(r.Rules) != c.rules || a.Admin(c.id) != c.admin {
			t.Errorf("Rights(%s) = %+v, want admin %v and %d rules", c.id, r, c.admin, c.rules)
		}
	}
	r := a.Rights("alice")
	r.Rules[0].Filter = "changed"
	if again := a.Rights("alice"); again.Rules[0].Filter != "nodes/#" {
		t.Errorf("changing the returned rules changed the user's: %+v", again.Rules)
	}

	// A reading of part of $SYS is not the operator's.
	part, err := Parse([]byte("[users.watch]\nread = [\"$SYS/broker/uptime\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if New(part).Admin("watch") {
		t.Error("a user who reads one $SYS topic is admin")
	}
	if r := Open().Rights(Anonymous); !r.Open || !r.Admin {
		t.Errorf("open hub: Rights = %+v, want open and admin", r)
	}

	// The flag survives a round trip; anonymous may not have it.
	again, err := Parse(u.Marshal())
	if err != nil || !New(again).Admin("boss") {
		t.Errorf("admin flag lost in a round trip (err %v)", err)
	}
	if _, err := Parse([]byte("[users.anonymous]\nadmin = true\n")); err == nil || !strings.Contains(err.Error(), "anonymous takes no") {
		t.Errorf("anonymous admin: err %v, want a refusal", err)
	}
	// Nor does reading all of $SYS make anonymous one: anyone is anonymous.
	sys, err := Parse([]byte("[users.anonymous]\nread = [\"#\", \"$SYS/#\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := New(sys).Rights(Anonymous); r.Admin || len(r.Rules) != 2 {
		t.Errorf("anonymous reading $SYS/#: Rights = %+v, want no admin", r)
	}
}
