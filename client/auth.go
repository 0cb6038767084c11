package weir

import (
	"context"
	"encoding/base64"

	"connectrpc.com/connect"
)

// WithToken authenticates every call with a bearer token (made with
// "weir user token NAME"), sent as "Authorization: Bearer <token>". A
// server with authentication on refuses calls without valid credentials
// with ErrUnauthenticated.
func WithToken(token string) Option {
	return func(o *options) { o.authorization = "Bearer " + token }
}

// WithBasicAuth authenticates every call with a user name and password,
// sent as HTTP Basic credentials. Over plain HTTP anyone on the path can
// read them; prefer WithToken, and TLS.
func WithBasicAuth(user, password string) Option {
	return func(o *options) {
		o.authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
}

// authOptions returns the connect options that send the credentials of
// WithToken or WithBasicAuth, if any.
func (o *options) authOptions() []connect.ClientOption {
	if o.authorization == "" {
		return nil
	}
	return []connect.ClientOption{connect.WithInterceptors(authInterceptor(o.authorization))}
}

// authInterceptor sets the Authorization header of unary and streaming
// calls.
type authInterceptor string

func (a authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", string(a))
		return next(ctx, req)
	}
}

func (a authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", string(a))
		return conn
	}
}

func (a authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next // client side only
}
