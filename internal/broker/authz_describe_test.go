package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/weirmq/weir/internal/auth"
)

// recorder collects the refusals told to it.
type recorder struct{ refusals []string }

func (r *recorder) RecordRefusal(kind auth.RefusalKind, user string) {
	r.refusals = append(r.refusals, string(kind)+":"+user)
}

// TestAuthorizeDescribe: any action on a resource lets a user see it, none
// is a *ForbiddenError with ActionDescribe; refusals (not the visibility
// checks lists make) are told to the identity's recorder; connectors are
// an administrator's.
func TestAuthorizeDescribe(t *testing.T) {
	rec := &recorder{}
	bob := WithRecordedPrincipal(context.Background(), auth.NewPrincipal("bob", false, []auth.Permission{
		{Resource: auth.ResourceStream, Name: "orders.*", Actions: []auth.Action{auth.ActionPublish}},
	}), rec)
	if err := AuthorizeDescribe(bob, auth.ResourceStream, "orders.eu"); err != nil {
		t.Errorf("describe a stream bob may publish to: %v", err)
	}
	err := AuthorizeDescribe(bob, auth.ResourceStream, "payments")
	var f *ForbiddenError
	if !errors.As(err, &f) || f.Action != ActionDescribe || f.User != "bob" || f.Name != "payments" {
		t.Errorf("describe payments: %v, want a describe refusal", err)
	}
	if Visible(bob, auth.ResourceStream, "payments") {
		t.Error("payments is visible to bob")
	}
	if VisibleAdmin(bob) {
		t.Error("bob is an administrator")
	}
	if err := AuthorizeAdmin(bob, "connector pg"); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob's connector: %v", err)
	}
	if len(rec.refusals) != 2 || rec.refusals[0] != "authorization:bob" {
		t.Errorf("recorded refusals: %v, want 2 of bob's (Visible counts none)", rec.refusals)
	}
	if err := AuthorizeDescribe(context.Background(), auth.ResourceStream, "payments"); err != nil {
		t.Errorf("the server's own work: %v", err)
	}
	if !VisibleAdmin(context.Background()) {
		t.Error("the server's own work is not an administrator's")
	}
}

// TestLoginRefusals: a login tells its authenticator's recorder of refused
// logins and of the refusals of calls made with its context.
func TestLoginRefusals(t *testing.T) {
	authn := &loginAuthn{recorder: &recorder{}}
	l, ctx := NewLogin(context.Background(), authn)
	l.AuthenticationRefused("mallory")
	if err := l.LoggedIn("bob"); err != nil {
		t.Fatal(err)
	}
	if err := Authorize(ctx, auth.ResourceStream, "payments", auth.ActionConsume); !errors.Is(err, ErrForbidden) {
		t.Fatalf("bob consumes payments: %v", err)
	}
	l.AuthorizationRefused()
	want := []string{"authentication:mallory", "authorization:bob", "authorization:bob"}
	if len(authn.refusals) != len(want) {
		t.Fatalf("refusals %v, want %v", authn.refusals, want)
	}
	for i := range want {
		if authn.refusals[i] != want[i] {
			t.Errorf("refusal %d: %s, want %s", i, authn.refusals[i], want[i])
		}
	}
	if _, ok, _ := l.CertificateUser(nil); ok || l.TakesCertificates() {
		t.Error("a login without certificate users took a certificate")
	}
}

// loginAuthn is a principal source whose users may do nothing but exist.
type loginAuthn struct{ *recorder }

func (loginAuthn) Principal(user string) (*auth.Principal, error) {
	return auth.NewPrincipal(user, false, nil), nil
}
