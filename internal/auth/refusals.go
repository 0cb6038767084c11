package auth

// Refusal counts: how many authentications and authorizations were refused,
// per protocol and user, for weir_auth_refusals_total (internal/server).
// The label set stays bounded: users of the users file are counted under
// their names, every other name (unknown users, empty names, garbage sent
// as a user name) under UnknownUser, which no user can be named.

import (
	"sort"
	"sync"
)

// RefusalKind says what was refused.
type RefusalKind string

const (
	// RefusalAuthentication: a login was refused (unknown user, wrong
	// password or token, a certificate naming no user).
	RefusalAuthentication RefusalKind = "authentication"
	// RefusalAuthorization: an operation was refused by the user's rules.
	RefusalAuthorization RefusalKind = "authorization"
)

// UnknownUser is the user label of refusals of names that are not users
// of the file. User names cannot contain parentheses, so it is no user's.
const UnknownUser = "(unknown)"

// RefusalRecorder is told of each refusal of one protocol's clients.
type RefusalRecorder interface {
	RecordRefusal(kind RefusalKind, user string)
}

// RefusalKey is one counter of Refusals.
type RefusalKey struct {
	Protocol string
	Kind     RefusalKind
	User     string
}

// RefusalCount is a counter and its value.
type RefusalCount struct {
	RefusalKey
	Count uint64
}

// Refusals counts refusals by protocol, kind and user. The zero value is
// ready; a nil *Refusals counts nothing.
type Refusals struct {
	known  func(user string) bool // nil: every name is UnknownUser
	mu     sync.Mutex
	counts map[RefusalKey]uint64
}

// NewRefusals returns counters that label the names known accepts by
// themselves and every other name UnknownUser.
func NewRefusals(known func(user string) bool) *Refusals {
	return &Refusals{known: known}
}

// Add counts one refusal.
func (r *Refusals) Add(protocol string, kind RefusalKind, user string) {
	if r == nil {
		return
	}
	if r.known == nil || user == "" || !r.known(user) {
		user = UnknownUser
	}
	k := RefusalKey{Protocol: protocol, Kind: kind, User: user}
	r.mu.Lock()
	if r.counts == nil {
		r.counts = make(map[RefusalKey]uint64)
	}
	r.counts[k]++
	r.mu.Unlock()
}

// Counts returns every counter, ordered by protocol, kind and user.
func (r *Refusals) Counts() []RefusalCount {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	out := make([]RefusalCount, 0, len(r.counts))
	for k, n := range r.counts {
		out = append(out, RefusalCount{RefusalKey: k, Count: n})
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.User < b.User
	})
	return out
}

// Count is one counter's value.
func (r *Refusals) Count(protocol string, kind RefusalKind, user string) uint64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[RefusalKey{Protocol: protocol, Kind: kind, User: user}]
}

// For returns the recorder of one protocol's refusals.
func (r *Refusals) For(protocol string) RefusalRecorder {
	return protocolRefusals{r: r, protocol: protocol}
}

type protocolRefusals struct {
	r        *Refusals
	protocol string
}

func (p protocolRefusals) RecordRefusal(kind RefusalKind, user string) {
	p.r.Add(p.protocol, kind, user)
}

// Refusals are the refusal counters of the users of u (made at first use).
func (u *Users) Refusals() *Refusals {
	u.refusalsOnce.Do(func() {
		u.refusals = NewRefusals(func(name string) bool {
			_, ok := u.byName[name]
			return ok
		})
	})
	return u.refusals
}
