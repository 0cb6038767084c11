package weir

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"connectrpc.com/connect"
)

// TestAuthOptions checks the Authorization header WithToken and
// WithBasicAuth send, against a server that records it and refuses the
// call as a server with authentication on refuses a stranger.
func TestAuthOptions(t *testing.T) {
	var mu sync.Mutex
	var got []string
	errWriter := connect.NewErrorWriter()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		errWriter.Write(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New("who are you")))
	}))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // the SDK's own transport speaks h2c
	srv.Config.Protocols = &protocols
	srv.Start()
	defer srv.Close()

	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"token", []Option{WithToken("weir_abc")}, "Bearer weir_abc"},
		{"basic", []Option{WithBasicAuth("alice", "p:w")}, "Basic YWxpY2U6cDp3"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			_, err := Dial(context.Background(), srv.URL, append(tt.opts, WithProtocol(ConnectProto))...)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Dial = %v, want ErrUnauthenticated", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("Authorization = %q, want [%q]", got, tt.want)
			}
		})
	}
}
