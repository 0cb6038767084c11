package auth

import (
	"crypto/tls"
	"net"
)

// CertificateLogin logs clients in by their verified TLS client
// certificates (tls-client-cert-user): every front end that takes a
// certificate as a user (Kafka's SSL principal, AMQP's SASL EXTERNAL, MQTT's
// identity as user name, HTTP and gRPC over mutual TLS) asks the same one.
type CertificateLogin interface {
	// CertificateUser is the user of the users file the connection's
	// verified client certificate names, or ErrUnauthenticated (no verified
	// certificate, no such field, or no such user).
	CertificateUser(state tls.ConnectionState) (string, error)
}

// CertificateUsers is the users file's CertificateLogin, taking the name
// from the certificate field source (CertificateUserSources).
type CertificateUsers struct {
	Users  *Users
	Source string
}

// CertificateUser implements CertificateLogin.
func (c CertificateUsers) CertificateUser(state tls.ConnectionState) (string, error) {
	if c.Users == nil || c.Source == "" || c.Source == "none" {
		return "", ErrUnauthenticated
	}
	name, ok := CertificateUser(state, c.Source)
	if !ok {
		return "", ErrUnauthenticated
	}
	if _, known := c.Users.byName[name]; !known {
		return "", ErrUnauthenticated
	}
	return name, nil
}

// ConnectionState is the TLS state of a connection, when it is a TLS
// connection: a *tls.Conn, anything else that tells its state, or a
// wrapper of one that gives it back with NetConn (as *tls.Conn does its
// own), such as a front end's byte-counting connection.
func ConnectionState(conn any) (tls.ConnectionState, bool) {
	for range 8 { // wrappers of wrappers, not forever
		if tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
			return tc.ConnectionState(), true
		}
		w, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = w.NetConn()
	}
	return tls.ConnectionState{}, false
}
