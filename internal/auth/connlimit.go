package auth

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
)

// PrincipalSource gives the principal of an authenticated user. The
// protocol front ends look for it on their authenticator: when it is
// there, authorization is on.
type PrincipalSource interface {
	Principal(user string) (*Principal, error)
}

// ConnectionLimiter counts the open connections of each user. A front end
// whose authenticator implements it asks once a connection has
// authenticated and calls release when the connection ends.
type ConnectionLimiter interface {
	AcquireConnection(user string) (release func(), err error)
}

// ErrTooManyConnections is returned by AcquireConnection for a user at its
// limit.
var ErrTooManyConnections = errors.New("too many connections")

// UserConnections is a ConnectionLimiter: at most the user's own
// max-connections (users file) or else Default open connections per user
// (0: no limit).
type UserConnections struct {
	users   *Users
	Default int
	// Refused, when set, is called for every refusal (metrics).
	Refused func(user string)

	mu   sync.Mutex
	open map[string]int
}

// NewUserConnections counts connections against the limits of users.
func NewUserConnections(users *Users, defaultLimit int) *UserConnections {
	return &UserConnections{users: users, Default: defaultLimit, open: map[string]int{}}
}

// AcquireConnection counts one more connection of user, or refuses it with
// ErrTooManyConnections when the user is at its limit.
func (c *UserConnections) AcquireConnection(user string) (func(), error) {
	limit := c.users.MaxConnections(user)
	if limit == 0 {
		limit = c.Default
	}
	c.mu.Lock()
	if limit > 0 && c.open[user] >= limit {
		c.mu.Unlock()
		if c.Refused != nil {
			c.Refused(user)
		}
		return nil, fmt.Errorf("%w: user %s has %d open connections, its limit", ErrTooManyConnections, user, limit)
	}
	c.open[user]++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.open[user]--; c.open[user] <= 0 {
				delete(c.open, user)
			}
		})
	}, nil
}

// Open is the number of open connections of user.
func (c *UserConnections) Open(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open[user]
}

// CertificateUserSources are the values of tls-client-cert-user: where in a
// verified client certificate the user name is taken from.
var CertificateUserSources = []string{"none", "cn", "san-email", "san-dns"}

// CertificateUser returns the user name a verified client certificate
// gives (its subject CN, or its first e-mail or DNS SAN), or false when the
// connection has no verified certificate or the field is empty.
func CertificateUser(state tls.ConnectionState, source string) (string, bool) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", false
	}
	leaf := state.VerifiedChains[0][0]
	var name string
	switch source {
	case "cn":
		name = leaf.Subject.CommonName
	case "san-email":
		if len(leaf.EmailAddresses) > 0 {
			name = leaf.EmailAddresses[0]
		}
	case "san-dns":
		if len(leaf.DNSNames) > 0 {
			name = leaf.DNSNames[0]
		}
	}
	return name, name != ""
}
