package broker

// Authorization: the broker's public entry points check the principal a
// protocol front end attached to the call's context against the user's
// rules (internal/auth), so every protocol gets the same answer. See
// "Authorization" in docs/SECURITY.md.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/weirmq/weir/internal/auth"
)

// ErrForbidden is wrapped by every refusal of an operation the caller's
// user may not do; errors.As with *ForbiddenError tells which resource.
var ErrForbidden = errors.New("forbidden")

// ForbiddenError is a refusal: User may not do Action to the Resource
// named Name.
type ForbiddenError struct {
	User     string
	Resource auth.Resource
	Name     string
	Action   auth.Action
}

func (e *ForbiddenError) Error() string {
	if e.User == "" {
		return fmt.Sprintf("%v: not authenticated: may not %s %s %q", ErrForbidden, e.Action, e.Resource, e.Name)
	}
	return fmt.Sprintf("%v: user %q may not %s %s %q", ErrForbidden, e.User, e.Action, e.Resource, e.Name)
}

func (e *ForbiddenError) Unwrap() error { return ErrForbidden }

// Identity is the slot of a connection's context that its principal fills
// once the connection has authenticated (Kafka SASL, AMQP start-ok), since
// such connections make their context before they know their user. Until
// it is set, every check of a context carrying it fails: a slot that is
// present means authorization is on.
type Identity struct {
	p atomic.Pointer[auth.Principal]
	// rec is told of the refusals of calls made with this identity (nil:
	// not counted).
	rec auth.RefusalRecorder
}

// Set records the connection's principal.
func (id *Identity) Set(p *auth.Principal) { id.p.Store(p) }

// Principal is the recorded principal, or nil.
func (id *Identity) Principal() *auth.Principal { return id.p.Load() }

type identityKey struct{}

// WithIdentity returns a context carrying the slot id: calls made with it
// are checked against the principal set in id (and refused while none is).
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// WithPrincipal returns a context whose calls are checked against p (a nil
// p allows nothing).
func WithPrincipal(ctx context.Context, p *auth.Principal) context.Context {
	return WithRecordedPrincipal(ctx, p, nil)
}

// WithRecordedPrincipal is WithPrincipal whose refusals are told to rec
// (nil: not counted).
func WithRecordedPrincipal(ctx context.Context, p *auth.Principal, rec auth.RefusalRecorder) context.Context {
	id := &Identity{rec: rec}
	id.Set(p)
	return WithIdentity(ctx, id)
}

// PrincipalFrom returns the principal the context carries and whether it
// carries an identity at all (false: the call is the server's own work, or
// authorization is off, and nothing is checked).
func PrincipalFrom(ctx context.Context) (*auth.Principal, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	if !ok || id == nil {
		return nil, false
	}
	return id.Principal(), true
}

// Authorize returns nil when the context may do act to the resource named
// name: it carries no identity (the server's own work) or its principal's
// rules allow it. Otherwise a *ForbiddenError wrapping ErrForbidden. Front
// ends call it for the operations that reach the broker through methods
// without a context (Kafka Fetch reads, MQTT topics).
func Authorize(ctx context.Context, res auth.Resource, name string, act auth.Action) error {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Allowed(res, name, act) {
		return nil
	}
	return refused(ctx, &ForbiddenError{User: p.User(), Resource: res, Name: name, Action: act})
}

// refused counts a refusal against the identity's user (RefusalRecorder)
// and returns it.
func refused(ctx context.Context, f *ForbiddenError) error {
	if id, _ := ctx.Value(identityKey{}).(*Identity); id != nil && id.rec != nil {
		id.rec.RecordRefusal(auth.RefusalAuthorization, f.User)
	}
	return f
}

// ActionDescribe names, in a refusal, the sight of a resource (describe,
// list, an AMQP passive declare): no rule grants it by itself; any action
// on the resource does, as Kafka's DESCRIBE is implied by READ, WRITE and
// ALTER.
const ActionDescribe auth.Action = "describe"

// AuthorizeDescribe returns nil when the context may see the resource
// (Visible), else a *ForbiddenError with ActionDescribe. Describe calls
// check it before they look the resource up, so that a refusal tells
// nothing of whether it exists (Kafka answers TOPIC_AUTHORIZATION_FAILED
// for a topic it may not describe whether or not it exists).
func AuthorizeDescribe(ctx context.Context, res auth.Resource, name string) error {
	if Visible(ctx, res, name) {
		return nil
	}
	p, _ := PrincipalFrom(ctx)
	return refused(ctx, &ForbiddenError{User: p.User(), Resource: res, Name: name, Action: ActionDescribe})
}

// VisibleAdmin reports whether the context may do what only an
// administrator may (admin: true, or manage on resource * name *), without
// counting a refusal: listings of administrators' things hide them.
func VisibleAdmin(ctx context.Context) bool {
	p, ok := PrincipalFrom(ctx)
	return !ok || p.Admin() || p.Allowed(auth.ResourceAny, "*", auth.ActionManage)
}

// AuthorizeAdmin refuses a context whose principal is not an
// administrator, for what belongs to no resource of its own (connectors).
func AuthorizeAdmin(ctx context.Context, what string) error { return authorizeAdmin(ctx, what) }

// Visible reports whether the context may see the resource at all (any
// action on it): listings and Kafka Metadata hide the others.
func Visible(ctx context.Context, res auth.Resource, name string) bool {
	p, ok := PrincipalFrom(ctx)
	return !ok || p.AllowedAny(res, name)
}

// authorizeAdmin refuses a context whose principal is not an
// administrator (connectors, which read and write any stream).
func authorizeAdmin(ctx context.Context, what string) error {
	if VisibleAdmin(ctx) {
		return nil
	}
	p, _ := PrincipalFrom(ctx)
	return refused(ctx, &ForbiddenError{User: p.User(), Resource: auth.ResourceAny, Name: what, Action: auth.ActionManage})
}

// AuthorizeSubscription checks act on a subscription: both the stream and
// the subscription (a queue rule covers both). Front ends call it before
// they accept a consumer whose reads come later.
func AuthorizeSubscription(ctx context.Context, streamName, sub string, act auth.Action) error {
	if err := Authorize(ctx, auth.ResourceStream, streamName, act); err != nil {
		return err
	}
	return Authorize(ctx, auth.ResourceSubscription, sub, act)
}

// WithoutIdentity returns ctx without its identity: for a front end's work
// on behalf of an operation it has just authorized (Kafka share groups
// create their subscription implicitly, which the member's consume right
// covers, as Kafka's group READ does). Never for a client's own request.
func WithoutIdentity(ctx context.Context) context.Context { return serverWork(ctx) }

// serverWork returns ctx without its identity, for the work an authorized
// operation does on the user's behalf (an exchange's publishes into the
// streams it routes to, dead-lettering, a redrive's reads), which is not
// checked again.
func serverWork(ctx context.Context) context.Context {
	if _, ok := PrincipalFrom(ctx); !ok {
		return ctx
	}
	return context.WithValue(ctx, identityKey{}, (*Identity)(nil))
}

// Login is what a protocol connection keeps of the user it logged in as:
// the identity slot of its context, against which every broker call it
// makes is checked, and its place in the user's connection limit.
type Login struct {
	src      auth.PrincipalSource   // nil: authorization is off
	limiter  auth.ConnectionLimiter // nil: no per-user limits
	rec      auth.RefusalRecorder   // nil: refusals are not counted
	certs    auth.CertificateLogin  // nil: certificates are no users
	identity *Identity
	release  func()
}

// NewLogin returns a new connection's login and context. With
// authorization on (authn has principals) the context gets an identity
// slot that stays empty, so that every checked call is refused, until
// LoggedIn fills it.
func NewLogin(ctx context.Context, authn any) (*Login, context.Context) {
	l := &Login{}
	l.src, _ = authn.(auth.PrincipalSource)
	l.limiter, _ = authn.(auth.ConnectionLimiter)
	l.rec, _ = authn.(auth.RefusalRecorder)
	l.certs, _ = authn.(auth.CertificateLogin)
	if l.src != nil {
		l.identity = &Identity{rec: l.rec}
		ctx = WithIdentity(ctx, l.identity)
	}
	return l, ctx
}

// AuthenticationRefused counts a refused login of user (its name as the
// client gave it; any name that is not a user's counts as unknown).
func (l *Login) AuthenticationRefused(user string) {
	if l.rec != nil {
		l.rec.RecordRefusal(auth.RefusalAuthentication, user)
	}
}

// AuthorizationRefused counts a refusal a front end decided itself (MQTT
// topics, which are no broker resource).
func (l *Login) AuthorizationRefused() {
	if l.rec != nil {
		l.rec.RecordRefusal(auth.RefusalAuthorization, l.Principal().User())
	}
}

// TakesCertificates reports whether the authenticator takes verified
// client certificates as users (tls-client-cert-user).
func (l *Login) TakesCertificates() bool { return l.certs != nil }

// CertificateUser is the user conn's verified TLS client certificate names
// (tls-client-cert-user), when the authenticator takes certificates as
// users; ok is false otherwise, or when conn is not TLS or has no verified
// certificate. err is set when a certificate was verified but names no
// user: it is counted as a refused authentication.
func (l *Login) CertificateUser(conn any) (user string, ok bool, err error) {
	if l.certs == nil {
		return "", false, nil
	}
	state, isTLS := auth.ConnectionState(conn)
	if !isTLS || len(state.VerifiedChains) == 0 {
		return "", false, nil
	}
	user, err = l.certs.CertificateUser(state)
	if err != nil {
		l.AuthenticationRefused("")
		return "", true, err
	}
	return user, true, nil
}

// Authorizing reports whether authorization is on.
func (l *Login) Authorizing() bool { return l.src != nil }

// LoggedIn takes the connection's place in user's connection limit (an
// error when the user has none left) and records user's principal; a user
// without one (removed meanwhile) leaves the slot empty: refused.
func (l *Login) LoggedIn(user string) error {
	if l.limiter != nil {
		release, err := l.limiter.AcquireConnection(user)
		if err != nil {
			return err
		}
		l.release = release
	}
	if l.src != nil {
		if p, err := l.src.Principal(user); err == nil {
			l.identity.Set(p)
		}
	}
	return nil
}

// Principal is the logged-in user's principal: nil before LoggedIn, with
// authorization off, or for a user without one.
func (l *Login) Principal() *auth.Principal {
	if l.identity == nil {
		return nil
	}
	return l.identity.Principal()
}

// LoggedOut gives the connection's place in its user's limit back.
func (l *Login) LoggedOut() {
	if l.release != nil {
		l.release()
		l.release = nil
	}
}
