package auth

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
)

// TestRefusals: users of the file are counted under their names, any other
// name under UnknownUser, per protocol and kind.
func TestRefusals(t *testing.T) {
	u := New()
	if err := u.Add("bob", "pw"); err != nil {
		t.Fatal(err)
	}
	r := u.Refusals()
	if r != u.Refusals() {
		t.Fatal("Refusals is not one set of counters")
	}
	kafka := r.For("kafka")
	kafka.RecordRefusal(RefusalAuthentication, "bob")
	kafka.RecordRefusal(RefusalAuthentication, "bob")
	kafka.RecordRefusal(RefusalAuthentication, "mallory")
	kafka.RecordRefusal(RefusalAuthentication, "")
	r.Add("mqtt", RefusalAuthorization, "bob")
	want := []RefusalCount{
		{RefusalKey{"kafka", RefusalAuthentication, UnknownUser}, 2},
		{RefusalKey{"kafka", RefusalAuthentication, "bob"}, 2},
		{RefusalKey{"mqtt", RefusalAuthorization, "bob"}, 1},
	}
	got := r.Counts()
	if len(got) != len(want) {
		t.Fatalf("Counts: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Counts[%d]: %v, want %v", i, got[i], want[i])
		}
	}
	if n := r.Count("kafka", RefusalAuthentication, "mallory"); n != 0 {
		t.Errorf("mallory, no user, has her own counter: %d", n)
	}
	var none *Refusals
	none.Add("kafka", RefusalAuthentication, "bob") // a nil set counts nothing
	if none.Counts() != nil || none.Count("kafka", RefusalAuthentication, "bob") != 0 {
		t.Error("a nil Refusals counted")
	}
}

// wrapped is a connection wrapper that gives its connection back.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// TestCertificateUsers: the user of a verified certificate's field, when it
// is a user of the file; none without a verified chain, for another user,
// or with source none.
func TestCertificateUsers(t *testing.T) {
	u := New()
	if err := u.Add("bob", "pw"); err != nil {
		t.Fatal(err)
	}
	leaf := func(cn string) tls.ConnectionState {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, EmailAddresses: []string{cn + "@example.com"}}
		return tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	for _, tc := range []struct {
		source string
		state  tls.ConnectionState
		want   string
	}{
		{"cn", leaf("bob"), "bob"},
		{"cn", leaf("mallory"), ""},
		{"san-email", leaf("bob"), ""}, // bob@example.com is no user
		{"none", leaf("bob"), ""},
		{"cn", tls.ConnectionState{}, ""}, // not verified
	} {
		got, err := CertificateUsers{Users: u, Source: tc.source}.CertificateUser(tc.state)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%s of %v: %q %v, want %q", tc.source, tc.state.VerifiedChains, got, err, tc.want)
		}
	}
	// ConnectionState reads through wrappers; a plain connection has none.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := tls.Client(a, &tls.Config{InsecureSkipVerify: true})
	if _, ok := ConnectionState(wrapped{wrapped{tc}}); !ok {
		t.Error("no TLS state through two wrappers")
	}
	if _, ok := ConnectionState(wrapped{a}); ok {
		t.Error("TLS state of a plain connection")
	}
}
