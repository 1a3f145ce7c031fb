package bridge

import "github.com/motehub/motehub/auth"

// UserRights is who a session or a request acts as and what it may do, as a
// page shows it: the "user", "open", "admin" and "rules" fields of config/ok
// and of GET /api/me.
type UserRights struct {
	// User is the user's name, or "anonymous" (also on an open hub).
	User string `json:"user"`
	// Open is true when the hub has no users file: everyone may read and
	// write everything, and Rules is empty.
	Open bool `json:"open"`
	// Admin is true when the user may use the admin view (auth.Rights).
	Admin bool `json:"admin"`
	// Rules are the user's rules, as in the users file: filters on full MQTT
	// topics (not relative to a session's base). A topic may be read when a
	// rule with read matches it, written when one with write does; nothing
	// else is allowed.
	Rules []RuleRights `json:"rules"`
}

// RuleRights is one rule of a user: an MQTT topic filter and what it grants.
type RuleRights struct {
	Filter string `json:"filter"`
	Read   bool   `json:"read"`
	Write  bool   `json:"write"`
}

// RightsOf is what who may do under the users authz has in force now.
func RightsOf(authz *auth.Authorizer, who auth.Identity) UserRights {
	r := authz.Rights(who)
	u := UserRights{User: string(who), Open: r.Open, Admin: r.Admin, Rules: make([]RuleRights, 0, len(r.Rules))}
	if u.User == "" {
		u.User = auth.Anonymous
	}
	for _, rule := range r.Rules {
		u.Rules = append(u.Rules, RuleRights{Filter: rule.Filter, Read: rule.Access&auth.Read != 0, Write: rule.Access&auth.Write != 0})
	}
	return u
}
