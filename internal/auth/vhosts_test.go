package auth

import (
	"errors"
	"strings"
	"testing"
)

// TestVhosts: the vhosts a user may open survive the file, absent means
// all and an empty list none.
func TestVhosts(t *testing.T) {
	u := New()
	for _, name := range []string{"alice", "bob", "carol"} {
		if err := u.Add(name, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.SetVhosts("alice", []string{"shop", "/"}); err != nil {
		t.Fatal(err)
	}
	if err := u.SetVhosts("carol", []string{}); err != nil {
		t.Fatal(err)
	}
	if err := u.SetVhosts("alice", []string{""}); err == nil {
		t.Error("an empty vhost name accepted")
	}
	if err := u.SetVhosts("nobody", nil); !errors.Is(err, ErrNoUser) {
		t.Errorf("unknown user: %v", err)
	}
	data, err := u.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("users.yaml", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	for _, c := range []struct {
		user, vhost string
		want        bool
	}{
		{"alice", "shop", true}, {"alice", "/", true}, {"alice", "other", false},
		{"bob", "shop", true}, {"bob", "/", true},
		{"carol", "/", false}, {"nobody", "/", false},
	} {
		if got := back.AllowVhost(c.user, c.vhost); got != c.want {
			t.Errorf("AllowVhost(%s, %s) = %v, want %v", c.user, c.vhost, got, c.want)
		}
	}
	if list, limited, err := back.Vhosts("alice"); err != nil || !limited || strings.Join(list, ",") != "shop,/" {
		t.Errorf("Vhosts(alice) = %v %v %v", list, limited, err)
	}
	bad := strings.Replace(string(data), "- shop", "- \"\"", 1)
	if _, err := Parse("users.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "vhost 1") {
		t.Errorf("an empty vhost in the file: %v", err)
	}
}
