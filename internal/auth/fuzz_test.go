package auth

import (
	"slices"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse: it must not panic, and a file
// it accepts must survive Marshal and Parse unchanged in its users.
func FuzzParse(f *testing.F) {
	u := New()
	u.Add("alice", "pw")
	u.NewToken("alice")
	good, _ := u.Marshal()
	f.Add(good)
	f.Add([]byte("users: []\n"))
	f.Add([]byte("users:\n  - name: bob\n    password: x\n"))
	f.Add([]byte("# empty\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		out, err := u.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed file: %v", err)
		}
		v, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
		}
		if !slices.Equal(u.Names(), v.Names()) || len(u.tokens) != len(v.tokens) {
			t.Fatalf("round trip changed the users: %v → %v", u.Names(), v.Names())
		}
	})
}
