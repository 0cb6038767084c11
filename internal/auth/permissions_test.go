package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"orders", "orders", true},
		{"orders", "orders2", false},
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders.", true},
		{"orders.*", "orders", false},
		{"orders.*", "ordersx", false},
		{"*", "", true},
		{"*", "anything/at.all", true},
		{"*.dlq", "orders.dlq", true},
		{"*.dlq", "orders.dlq.x", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"sensors/*", "sensors/+/temp", true},
		{"sensors/*", "sensors/#", true},
		{"q?", "q1", true},
		{"q?", "q12", false},
		{"**x", "yyx", true},
		{strings.Repeat("*a", 30), strings.Repeat("a", 29) + "b", false}, // no exponential blow-up
	} {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestPrincipalAllowed(t *testing.T) {
	p := NewPrincipal("bob", false, []Permission{
		{Resource: ResourceStream, Name: "orders.*", Actions: []Action{ActionPublish, ActionConsume}},
		{Resource: ResourceQueue, Name: "jobs", Actions: []Action{ActionConsume}},
		{Resource: ResourceGroup, Name: "billing", Actions: []Action{ActionConsume}},
		{Resource: ResourceAny, Name: "tmp-*", Actions: []Action{ActionManage}},
	})
	for _, c := range []struct {
		res  Resource
		name string
		act  Action
		want bool
	}{
		{ResourceStream, "orders.eu", ActionPublish, true},
		{ResourceStream, "orders.eu", ActionManage, false},
		{ResourceStream, "payments", ActionPublish, false},
		{ResourceExchange, "orders.eu", ActionPublish, false},
		{ResourceStream, "jobs", ActionConsume, true},       // a queue is a stream
		{ResourceSubscription, "jobs", ActionConsume, true}, // and its subscription
		{ResourceQueue, "jobs", ActionPublish, false},
		{ResourceGroup, "billing", ActionConsume, true},
		{ResourceSubscription, "billing", ActionConsume, true}, // a share group
		{ResourceGroup, "other", ActionConsume, false},
		{ResourceExchange, "tmp-1", ActionManage, true},
		{ResourceTopic, "tmp-1", ActionManage, true},
		{ResourceAny, "*", ActionManage, false},
	} {
		if got := p.Allowed(c.res, c.name, c.act); got != c.want {
			t.Errorf("Allowed(%s, %q, %s) = %v, want %v", c.res, c.name, c.act, got, c.want)
		}
	}
	if !p.AllowedAny(ResourceStream, "orders.x") || p.AllowedAny(ResourceStream, "payments") {
		t.Error("AllowedAny")
	}
	if (*Principal)(nil).Allowed(ResourceStream, "x", ActionConsume) {
		t.Error("a nil principal is allowed")
	}
	if !Unrestricted("old").Allowed(ResourceExchange, "x", ActionManage) {
		t.Error("a user without rules is refused")
	}
	if !NewPrincipal("root", true, nil).Allowed(ResourceAny, "*", ActionManage) {
		t.Error("an admin is refused")
	}
}

// TestPermissionsFile: rules and admin survive a save and a load; a user
// without a permissions key keeps full access; Grant and Revoke edit.
func TestPermissionsFile(t *testing.T) {
	u := New()
	for _, n := range []string{"alice", "bob"} {
		if err := u.Add(n, "pw-"+n); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Grant("bob", Permission{Resource: ResourceStream, Name: "orders.*", Actions: []Action{ActionPublish}}); err != nil {
		t.Fatal(err)
	}
	if err := u.Grant("bob", Permission{Resource: ResourceStream, Name: "orders.*", Actions: []Action{ActionConsume, ActionPublish}}); err != nil {
		t.Fatal(err)
	}
	if err := u.Grant("bob", Permission{Resource: ResourceGroup, Name: "g", Actions: []Action{ActionConsume}}); err != nil {
		t.Fatal(err)
	}
	if err := u.SetMaxConnections("bob", 3); err != nil {
		t.Fatal(err)
	}
	if err := u.SetQuotas("bob", 1000, 2000); err != nil {
		t.Fatal(err)
	}
	if err := u.Grant("bob", Permission{Resource: "table", Name: "x", Actions: []Action{ActionConsume}}); !errors.Is(err, ErrInvalidPermission) {
		t.Errorf("grant on resource table: %v", err)
	}
	if err := u.Grant("nobody", Permission{Resource: ResourceStream, Name: "x", Actions: []Action{ActionConsume}}); !errors.Is(err, ErrNoUser) {
		t.Errorf("grant to an unknown user: %v", err)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := u.Save(path); err != nil {
		t.Fatal(err)
	}
	v, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rules, limited, admin, err := v.Permissions("bob")
	if err != nil || !limited || admin || len(rules) != 2 ||
		rules[0].String() != `stream "orders.*": publish,consume` || rules[1].String() != `group "g": consume` {
		t.Fatalf("bob's rules after a reload: %v limited=%v admin=%v err=%v", rules, limited, admin, err)
	}
	if v.MaxConnections("bob") != 3 {
		t.Errorf("max-connections = %d", v.MaxConnections("bob"))
	}
	if p, c := v.Quotas("bob"); p != 1000 || c != 2000 {
		t.Errorf("quotas after a reload: %d %d", p, c)
	}
	if bp, _ := v.Principal("bob"); bp.ProduceQuota().Rate() != 1000 || bp.ConsumeQuota().Rate() != 2000 {
		t.Error("the principal lacks the quotas")
	}
	if _, limited, _, _ := v.Permissions("alice"); limited {
		t.Error("alice, without rules, is limited")
	}
	alice, _ := v.Principal("alice")
	if !alice.Allowed(ResourceExchange, "anything", ActionManage) {
		t.Error("alice, without rules, is refused")
	}
	bob, _ := v.Principal("bob")
	if !bob.Allowed(ResourceStream, "orders.eu", ActionConsume) || bob.Allowed(ResourceStream, "payments", ActionConsume) {
		t.Error("bob's principal")
	}
	if err := v.Revoke("bob", Permission{Resource: ResourceStream, Name: "orders.*", Actions: []Action{ActionPublish}}); err != nil {
		t.Fatal(err)
	}
	bob, _ = v.Principal("bob")
	if bob.Allowed(ResourceStream, "orders.eu", ActionPublish) || !bob.Allowed(ResourceStream, "orders.eu", ActionConsume) {
		t.Error("revoke of publish")
	}
	for _, p := range []Permission{{Resource: ResourceStream, Name: "orders.*"}, {Resource: ResourceGroup, Name: "g"}} {
		if err := v.Revoke("bob", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Revoke("bob", Permission{Resource: ResourceGroup, Name: "g"}); !errors.Is(err, ErrInvalidPermission) {
		t.Errorf("revoking a missing rule: %v", err)
	}
	rules, limited, _, _ = v.Permissions("bob")
	bob, _ = v.Principal("bob")
	if len(rules) != 0 || !limited || bob.Allowed(ResourceStream, "orders.eu", ActionConsume) {
		t.Error("after revoking every rule bob must be allowed nothing")
	}
	if err := v.SetAdmin("bob", true); err != nil {
		t.Fatal(err)
	}
	bob, _ = v.Principal("bob")
	if !bob.Admin() || !bob.Allowed(ResourceQueue, "x", ActionManage) {
		t.Error("admin")
	}
}

// TestPermissionsFileErrors: bad rules stop the load with the line and the
// field.
func TestPermissionsFileErrors(t *testing.T) {
	u := New()
	if err := u.Add("bob", "pw"); err != nil {
		t.Fatal(err)
	}
	good, err := u.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimRight(string(good), "\n")
	lines := strings.Count(base, "\n") + 1
	for _, c := range []struct {
		add, want string
		line      int
	}{
		{"\n    permissions:\n      - {resource: table, name: x, actions: [consume]}", `field resource: "table"`, lines + 2},
		{"\n    permissions:\n      - resource: stream\n        name: \"\"\n        actions: [consume]", "field name", lines + 3},
		{"\n    permissions:\n      - resource: stream\n        name: x\n        actions: [read]", `field actions: "read"`, lines + 4},
		{"\n    permissions:\n      - {resource: stream, name: x}", "field actions", lines + 2},
		{"\n    permissions:\n      - {resource: stream, name: x, actions: [consume], extra: 1}", "extra", 0},
		{"\n    max-connections: -1", "field max-connections", lines + 1},
		{"\n    produce-bytes-per-second: -5", "field produce-bytes-per-second", lines + 1},
		{"\n    admin: maybe", "`maybe` into bool", lines + 1},
	} {
		_, err := Parse("users.yaml", []byte(base+c.add+"\n"))
		if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.add, err, c.want)
			continue
		}
		if c.line > 0 && !strings.Contains(err.Error(), "line "+itoa(c.line)+":") {
			t.Errorf("%q: %v, want line %d", c.add, err, c.line)
		}
	}
}

// TestByteRate: a bucket of 1,000 bytes a second holds one second's worth;
// past it, Take says how long to hold the connection for the debt.
func TestByteRate(t *testing.T) {
	if NewByteRate(0) != nil || (*ByteRate)(nil).Take(1<<20, time.Now()) != 0 {
		t.Fatal("no quota must never throttle")
	}
	q := NewByteRate(1000)
	now := time.Unix(1000, 0)
	if d := q.Take(1000, now); d != 0 {
		t.Errorf("the first second's worth: %v", d)
	}
	if d := q.Take(500, now); d != 500*time.Millisecond {
		t.Errorf("500 bytes of debt: %v, want 500ms", d)
	}
	if d := q.Take(0, now.Add(time.Second)); d != 0 {
		t.Errorf("nothing taken: %v", d)
	}
	// A second later the debt is paid and 500 bytes are back.
	if d := q.Take(500, now.Add(time.Second)); d != 0 {
		t.Errorf("after a second: %v", d)
	}
	// Idle time refills at most one second's worth.
	if d := q.Take(1500, now.Add(time.Hour)); d != 500*time.Millisecond {
		t.Errorf("after an hour idle, 1500 bytes: %v, want 500ms", d)
	}
}
