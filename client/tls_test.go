package weir

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"testing"
)

func TestWithTLSAddress(t *testing.T) {
	ctx := context.Background()
	for addr, want := range map[string]string{
		"localhost:8443":           "https://localhost:8443",
		"https://weir.example/api": "https://weir.example/api",
	} {
		c, err := Dial(ctx, addr, WithTLS(&tls.Config{}), WithoutDialCheck())
		if err != nil {
			t.Fatalf("Dial(%q, WithTLS) = %v", addr, err)
		}
		if c.Addr() != want {
			t.Errorf("Dial(%q, WithTLS).Addr() = %q, want %q", addr, c.Addr(), want)
		}
		if got := c.ownTransport.TLSClientConfig; got == nil {
			t.Errorf("Dial(%q, WithTLS): the transport has no TLS configuration", addr)
		}
		c.Close()
	}
	for name, opts := range map[string][]Option{
		"http URL":         {WithTLS(&tls.Config{})},
		"with HTTP client": {WithTLS(&tls.Config{}), WithHTTPClient(http.DefaultClient)},
	} {
		addr := "localhost:8443"
		if name == "http URL" {
			addr = "http://localhost:8443"
		}
		if _, err := Dial(ctx, addr, append(opts, WithoutDialCheck())...); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: Dial = %v, want ErrInvalidArgument", name, err)
		}
	}
}
