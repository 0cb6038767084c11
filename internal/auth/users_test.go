package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSCRAMKeysRFC7677 checks the derived keys against the example
// exchange of RFC 7677 section 3 (user "user", password "pencil"): the
// client's proof must verify against StoredKey and the server signature
// must come from ServerKey.
func TestSCRAMKeysRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	keys, err := DeriveSCRAMKeys(SCRAMSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const (
		clientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst     = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinalBare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
		proof           = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverSig       = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	authMessage := clientFirstBare + "," + serverFirst + "," + clientFinalBare
	clientSig := HMAC(sha256.New, keys.StoredKey, authMessage)
	p, _ := base64.StdEncoding.DecodeString(proof)
	clientKey := make([]byte, len(p))
	for i := range p {
		clientKey[i] = p[i] ^ clientSig[i]
	}
	if got := sha256.Sum256(clientKey); !hmac.Equal(got[:], keys.StoredKey) {
		t.Errorf("the RFC's client proof does not verify against StoredKey")
	}
	if got := base64.StdEncoding.EncodeToString(HMAC(sha256.New, keys.ServerKey, authMessage)); got != serverSig {
		t.Errorf("server signature = %s, want %s", got, serverSig)
	}
}

func TestDeriveSCRAMKeysBounds(t *testing.T) {
	if _, err := DeriveSCRAMKeys(SCRAMSHA256, "pw", []byte("saltsalt"), 1000); err == nil {
		t.Error("1000 iterations accepted")
	}
	if _, err := DeriveSCRAMKeys("SCRAM-MD5", "pw", []byte("saltsalt"), 4096); err == nil {
		t.Error("unknown mechanism accepted")
	}
	k, err := DeriveSCRAMKeys(SCRAMSHA512, "pw", []byte("saltsalt"), 4096)
	if err != nil || len(k.StoredKey) != 64 || len(k.ServerKey) != 64 {
		t.Errorf("SHA-512 keys: %d/%d bytes, %v", len(k.StoredKey), len(k.ServerKey), err)
	}
}

func TestPasswordHash(t *testing.T) {
	h := newPasswordHash("s3cret")
	s := h.String()
	if !strings.HasPrefix(s, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %s", s)
	}
	parsed, err := parsePasswordHash(s)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.matches("s3cret") || parsed.matches("s3cret ") || parsed.matches("") {
		t.Error("parsed hash matches the wrong passwords")
	}
	if other := newPasswordHash("s3cret"); bytes.Equal(other.salt, h.salt) || bytes.Equal(other.key, h.key) {
		t.Error("two hashes of one password share salt or key")
	}
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1,x=3$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
	} {
		if _, err := parsePasswordHash(bad); err == nil {
			t.Errorf("parsePasswordHash(%q) accepted", bad)
		}
	}
}

func TestUsersRoundTrip(t *testing.T) {
	u := New()
	if err := u.Add("alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := u.Add("bob@example.com", "battery staple"); err != nil {
		t.Fatal(err)
	}
	if err := u.Add("alice", "again"); !errors.Is(err, ErrUserExists) {
		t.Errorf("second alice: %v", err)
	}
	for _, bad := range []string{"", "a:b", "a b", "-x", "a,b", "a=b", strings.Repeat("x", 129)} {
		if err := u.Add(bad, "pw"); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Add(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if err := u.Add("carol", ""); err == nil {
		t.Error("empty password accepted")
	}
	tok, err := u.NewToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := u.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, secret := range []string{"correct horse", "battery staple", tok} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("file contains the secret %q:\n%s", secret, data)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}

	v, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, data)
	}
	if got := strings.Join(v.Names(), ","); got != "alice,bob@example.com" {
		t.Errorf("names = %s", got)
	}
	if err := v.CheckPassword("alice", "correct horse"); err != nil {
		t.Errorf("alice, right password: %v", err)
	}
	for _, c := range [][2]string{{"alice", "battery staple"}, {"alice", ""}, {"mallory", "correct horse"}, {"", ""}} {
		if err := v.CheckPassword(c[0], c[1]); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("CheckPassword(%q, %q) = %v, want ErrUnauthenticated", c[0], c[1], err)
		}
	}
	if name, err := v.CheckToken(tok); err != nil || name != "alice" {
		t.Errorf("CheckToken = %q, %v", name, err)
	}
	for _, bad := range []string{"", tok + "x", tok[:len(tok)-1], "weir_" + strings.Repeat("A", 43)} {
		if _, err := v.CheckToken(bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("CheckToken(%q) = %v", bad, err)
		}
	}
	// The stored SCRAM keys are those of the password.
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA512} {
		k, err := v.SCRAM(mech, "bob@example.com")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := DeriveSCRAMKeys(mech, "battery staple", k.Salt, k.Iterations)
		if !bytes.Equal(k.StoredKey, want.StoredKey) || !bytes.Equal(k.ServerKey, want.ServerKey) {
			t.Errorf("%s keys differ from the password's", mech)
		}
		if k.Iterations != DefaultSCRAMIterations {
			t.Errorf("%s iterations %d", mech, k.Iterations)
		}
	}
	if _, err := v.SCRAM(SCRAMSHA256, "mallory"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("SCRAM of unknown user: %v", err)
	}

	// Editing: remove bob, revoke alice's token, save, load again.
	if err := v.Remove("bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := v.Remove("bob@example.com"); !errors.Is(err, ErrNoUser) {
		t.Errorf("second Remove: %v", err)
	}
	if n, err := v.RevokeTokens("alice"); n != 1 || err != nil {
		t.Errorf("RevokeTokens = %d, %v", n, err)
	}
	if _, err := v.CheckToken(tok); err == nil {
		t.Error("revoked token accepted")
	}
	if err := v.SetPassword("alice", "new one"); err != nil {
		t.Fatal(err)
	}
	if err := v.Save(path); err != nil {
		t.Fatal(err)
	}
	w, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 || w.CheckPassword("alice", "new one") != nil || w.CheckPassword("alice", "correct horse") == nil {
		t.Errorf("after edits: %v users, password check wrong", w.Len())
	}
}

func TestCheckBasicCache(t *testing.T) {
	u := New()
	if err := u.Add("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := u.CheckBasic("alice", "wrong"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong password: %v", err)
	}
	if err := u.CheckBasic("alice", "pw"); err != nil {
		t.Errorf("right password: %v", err)
	}
	if !u.basic.hit("alice", "pw") || u.basic.hit("alice", "wrong") {
		t.Error("cache holds the wrong credentials")
	}
	if err := u.CheckBasic("alice", "pw"); err != nil {
		t.Errorf("cached: %v", err)
	}
	// A removed user's cached credentials no longer count.
	u.Remove("alice")
	if err := u.CheckBasic("alice", "pw"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("removed user: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	u := New()
	u.Add("alice", "pw")
	good, _ := u.Marshal()
	goodText := string(good)
	replace := func(old, new string) string {
		if !strings.Contains(goodText, old) {
			t.Fatalf("%q not in\n%s", old, goodText)
		}
		return strings.Replace(goodText, old, new, 1)
	}
	line := func(substr string) string {
		for i, l := range strings.Split(goodText, "\n") {
			if strings.Contains(l, substr) {
				return "line " + itoa(i+1)
			}
		}
		t.Fatalf("%q not in file", substr)
		return ""
	}
	k, _ := u.SCRAM(SCRAMSHA512, "alice")
	storedKey := b64.EncodeToString(k.StoredKey)
	tests := []struct {
		name, text string
		want       []string
	}{
		{"yaml syntax", "users: [\n", []string{"users.yaml", "line"}},
		{"unknown field", replace("    password:", "    pasword:"), []string{"field pasword not found"}},
		{"bad name", replace("name: alice", "name: 'al:ice'"), []string{line("name: alice"), "field name", "al:ice"}},
		{"duplicate", goodText + strings.SplitN(goodText, "users:\n", 2)[1], []string{"appears twice"}},
		{"bad hash", replace("$argon2id$", "$bcrypt$"), []string{line("password:"), `user "alice": field password`, "argon2id"}},
		{"missing scram", replace("scram-sha-256:", "x-scram-256:"), []string{"x-scram-256"}},
		{"bad stored key", replace(storedKey, "short"), []string{line(storedKey), "scram-sha-512.stored-key", "64 bytes"}},
		{"low iterations", replace("iterations: 8192", "iterations: 10"), []string{"iterations", "want 4096"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("users.yaml", []byte(tt.text))
			if !errors.Is(err, ErrInvalidFile) {
				t.Fatalf("Parse = %v, want ErrInvalidFile", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	tokText := goodText + "    tokens:\n      - sha256: abc\n"
	_, err := Parse("users.yaml", []byte(tokText))
	if err == nil || !strings.Contains(err.Error(), "field sha256") || !strings.Contains(err.Error(), "line "+itoa(strings.Count(tokText, "\n"))) {
		t.Errorf("bad token digest: %v", err)
	}
	if u, err := Parse("empty.yaml", []byte("# nothing yet\n")); err != nil || u.Len() != 0 {
		t.Errorf("empty file: %v, %v", u, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
