package weir

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// WithTLS makes the client speak TLS to the server with config: the CAs
// that sign the server's certificate (RootCAs; nil trusts the system's),
// a client certificate when the server asks for one (Certificates), and so
// on. An address without a scheme ("host:8443") is then called over
// https://; an http:// URL is an error. Without WithTLS, an https:// URL
// uses the system's CAs. HTTP/2 is negotiated by ALPN, so gRPC works over
// TLS as over h2c. WithTLS cannot be combined with WithHTTPClient, whose
// transport carries its own TLS settings.
func WithTLS(config *tls.Config) Option {
	return func(o *options) { o.tlsConfig = config }
}

// tlsBaseURL applies WithTLS to the base URL made of addr: https:// for an
// address given without a scheme.
func (o *options) tlsBaseURL(addr, base string) (string, error) {
	if o.tlsConfig == nil {
		return base, nil
	}
	if o.httpClient != nil {
		return "", fmt.Errorf("%w: WithTLS and WithHTTPClient together: set the TLS configuration on the HTTP client's transport", ErrInvalidArgument)
	}
	if rest, ok := strings.CutPrefix(base, "http://"); ok {
		if strings.Contains(addr, "://") {
			return "", fmt.Errorf("%w: WithTLS with the http:// address %q: use https://", ErrInvalidArgument, addr)
		}
		return "https://" + rest, nil
	}
	return base, nil
}
