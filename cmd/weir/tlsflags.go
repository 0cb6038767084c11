package main

// The TLS flags of the client commands: --tls-ca, --tls-cert, --tls-key,
// --tls-insecure-skip-verify, and their WEIR_TLS_* variables.

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strconv"
)

// tlsFlags say how a client command speaks TLS to the server.
type tlsFlags struct {
	ca, cert, key  string
	insecureVerify bool
}

func (t *tlsFlags) bind(fs *flag.FlagSet) {
	env := func(name string) string { return os.Getenv(name) }
	insecure, _ := strconv.ParseBool(env("WEIR_TLS_INSECURE_SKIP_VERIFY"))
	fs.StringVar(&t.ca, "tls-ca", env("WEIR_TLS_CA"), "PEM file of the CA certificates that sign the server's certificate (instead of the system's); implies TLS (env WEIR_TLS_CA)")
	fs.StringVar(&t.cert, "tls-cert", env("WEIR_TLS_CERT"), "PEM client certificate, for a server that asks for one; implies TLS (env WEIR_TLS_CERT)")
	fs.StringVar(&t.key, "tls-key", env("WEIR_TLS_KEY"), "PEM private key of --tls-cert (env WEIR_TLS_KEY)")
	fs.BoolVar(&t.insecureVerify, "tls-insecure-skip-verify", insecure, "speak TLS without checking the server's certificate: for tests only, anyone on the path can read and change the traffic (env WEIR_TLS_INSECURE_SKIP_VERIFY)")
}

// config returns the TLS configuration the flags ask for, or nil when they
// ask for none (an https:// server address then uses the system's CAs).
func (t *tlsFlags) config() (*tls.Config, error) {
	if t.ca == "" && t.cert == "" && t.key == "" && !t.insecureVerify {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.insecureVerify}
	if t.ca != "" {
		data, err := os.ReadFile(t.ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", t.ca)
		}
	}
	switch {
	case t.cert != "" && t.key == "":
		return nil, usagef("--tls-cert needs --tls-key")
	case t.key != "" && t.cert == "":
		return nil, usagef("--tls-key needs --tls-cert")
	case t.cert != "":
		pair, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert %s with --tls-key %s: %w", t.cert, t.key, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
