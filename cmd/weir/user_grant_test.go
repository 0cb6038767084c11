package main

import (
	"path/filepath"
	"testing"

	"github.com/weirmq/weir/internal/auth"
)

// TestUserGrantRevoke: weir user grant, revoke, permissions and limit edit
// the rules the server loads (checked through internal/auth).
func TestUserGrantRevoke(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.yaml")
	run := func(args ...string) (int, string, string) {
		return weirCmd(t, "", nil, append(args, "--users", users)...)
	}
	code, out, errOut := run("user", "add", "bob")
	expect(t, code, out, errOut, 0, []string{"added user bob"}, nil)
	code, out, errOut = run("user", "permissions", "bob")
	expect(t, code, out, errOut, 0, []string{"no permissions key: allowed everything"}, nil)

	code, out, errOut = run("user", "grant", "bob", "stream", "orders.*", "publish,consume")
	expect(t, code, out, errOut, 0, []string{`granted stream "orders.*": publish,consume to bob`}, nil)
	code, out, errOut = run("user", "grant", "bob", "group", "billing", "consume")
	expect(t, code, out, errOut, 0, []string{`granted group "billing": consume`}, nil)
	code, out, errOut = run("user", "grant", "bob", "table", "x", "consume")
	expect(t, code, out, errOut, 2, nil, []string{`field resource: "table"`})
	code, out, errOut = run("user", "grant", "bob", "stream", "x", "read")
	expect(t, code, out, errOut, 2, nil, []string{`action "read"`})
	code, out, errOut = run("user", "grant", "nobody", "stream", "x", "consume")
	expect(t, code, out, errOut, 1, nil, []string{"no such user: nobody"})
	code, out, errOut = run("user", "limit", "bob", "--max-connections", "2", "--produce-bytes-per-second", "1000")
	expect(t, code, out, errOut, 0, []string{"max-connections of bob: 2, produce-bytes-per-second: 1000"}, nil)
	code, out, errOut = run("user", "limit", "bob", "--max-connections", "-1")
	expect(t, code, out, errOut, 1, nil, []string{"want 0 or more"})

	code, out, errOut = run("user", "permissions", "bob")
	expect(t, code, out, errOut, 0, []string{`stream "orders.*": publish,consume`, `group "billing": consume`, "max-connections 2", "produce-bytes-per-second 1000"}, nil)
	u, err := auth.Load(users)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := u.Principal("bob")
	if !p.Allowed(auth.ResourceStream, "orders.eu", auth.ActionPublish) || p.Allowed(auth.ResourceStream, "payments", auth.ActionPublish) {
		t.Error("the server would not see bob's rules")
	}

	code, out, errOut = run("user", "revoke", "bob", "stream", "orders.*", "publish")
	expect(t, code, out, errOut, 0, []string{`revoked publish on stream "orders.*" from bob`}, nil)
	code, out, errOut = run("user", "revoke", "bob", "group", "billing")
	expect(t, code, out, errOut, 0, []string{`revoked every action on group "billing"`}, nil)
	code, out, errOut = run("user", "revoke", "bob", "group", "billing")
	expect(t, code, out, errOut, 1, nil, []string{`no rule for group "billing"`})
	u, err = auth.Load(users)
	if err != nil {
		t.Fatal(err)
	}
	p, _ = u.Principal("bob")
	if p.Allowed(auth.ResourceStream, "orders.eu", auth.ActionPublish) || !p.Allowed(auth.ResourceStream, "orders.eu", auth.ActionConsume) ||
		p.Allowed(auth.ResourceGroup, "billing", auth.ActionConsume) {
		t.Error("revoke did not reach the file")
	}
	code, out, errOut = run("user", "grant", "bob", "--admin")
	expect(t, code, out, errOut, 0, []string{"bob is an administrator"}, nil)
	code, out, errOut = run("user", "permissions", "bob")
	expect(t, code, out, errOut, 0, []string{"administrator: allowed everything"}, nil)
	code, out, errOut = run("user", "revoke", "bob", "--admin")
	expect(t, code, out, errOut, 0, []string{"no longer an administrator"}, nil)
}
