package api_test

import (
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
)

func TestExchanges(t *testing.T) {
	n := startNode(t, "")
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			ctx := t.Context()
			p := strings.ReplaceAll(proto, "+", "-") + "."
			x, hx, alt := p+"events", p+"hdrs", p+"alt"
			eu, all, other, lost := p+"eu", p+"all", p+"other", p+"lost"
			for _, s := range []string{eu, all, other, lost} {
				createStream(t, c, s, 1)
			}

			info := declareExchange(t, c, x, "topic", alt, 0)
			if info.GetName() != x || info.GetType() != "topic" || info.GetAlternateExchange() != alt || len(info.GetBindings()) != 0 {
				t.Errorf("DeclareExchange = %v", info)
			}
			declareExchange(t, c, x, "topic", alt, 0)                          // the same: fine
			declareExchange(t, c, x, "direct", alt, connect.CodeAlreadyExists) // another type
			declareExchange(t, c, alt, "fanout", "", 0)
			declareExchange(t, c, hx, "headers", "", 0)
			declareExchange(t, c, p+"bad", "random", "", connect.CodeInvalidArgument)
			declareExchange(t, c, p+"bad", "", "", connect.CodeInvalidArgument)
			declareExchange(t, c, "", "topic", "", connect.CodeInvalidArgument)

			bind(t, c, &weirpb.BindRequest{Exchange: x, Destination: eu, Key: "order.eu.*"}, 0)
			bind(t, c, &weirpb.BindRequest{Exchange: x, Destination: all, Key: "order.#"}, 0)
			bind(t, c, &weirpb.BindRequest{Exchange: x, Destination: all, Key: "order.#"}, 0) // twice: nothing changes
			bind(t, c, &weirpb.BindRequest{Exchange: x, Destination: hx, ToExchange: true, Key: "audit.#"}, 0)
			bind(t, c, &weirpb.BindRequest{Exchange: alt, Destination: lost}, 0)
			bind(t, c, &weirpb.BindRequest{Exchange: hx, Destination: other, Args: map[string]string{"x-match": "any", "kind": "refund", "vip": "yes"}}, 0)
			bind(t, c, &weirpb.BindRequest{Exchange: x, Destination: eu, Key: "a.#.#b"}, connect.CodeInvalidArgument)
			bind(t, c, &weirpb.BindRequest{Exchange: x, Destination: p + "nowhere"}, connect.CodeNotFound)
			bind(t, c, &weirpb.BindRequest{Exchange: x, Destination: p + "nox", ToExchange: true}, connect.CodeNotFound)
			bind(t, c, &weirpb.BindRequest{Exchange: p + "nox", Destination: eu}, connect.CodeNotFound)
			bind(t, c, &weirpb.BindRequest{Exchange: x}, connect.CodeInvalidArgument)

			list, err := c.ListExchanges(ctx, connect.NewRequest(&weirpb.ListExchangesRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			var ev *weirpb.ExchangeInfo
			for _, e := range list.Msg.GetExchanges() {
				if e.GetName() == x {
					ev = e
				}
			}
			if ev == nil || len(ev.GetBindings()) != 3 || !ev.GetBindings()[2].GetToExchange() || ev.GetBindings()[0].GetKey() != "order.eu.*" {
				t.Errorf("ListExchanges: %s = %v", x, ev)
			}
			hinfo := exchangeNamed(t, c, hx)
			if b := hinfo.GetBindings(); len(b) != 1 || b[0].GetArgs()["kind"] != "refund" {
				t.Errorf("headers exchange = %v", hinfo)
			}

			// A topic exchange reaching two streams.
			resp := publishExchange(t, c, x, "order.eu.paid", false, nil, "o1", "o2")
			if got := slices.Sorted(slices.Values(resp.GetStreams())); !slices.Equal(got, []string{all, eu}) || resp.GetUnroutable() {
				t.Errorf("PublishExchange order.eu.paid = %v", resp)
			}
			publishExchange(t, c, x, "order.us.paid", false, nil, "o3")
			if got := fetchValues(t, c, eu); !slices.Equal(got, []string{"o1", "o2"}) {
				t.Errorf("%s holds %v", eu, got)
			}
			if got := fetchValues(t, c, all); !slices.Equal(got, []string{"o1", "o2", "o3"}) {
				t.Errorf("%s holds %v", all, got)
			}

			// Through the headers exchange, each record on its own headers.
			resp = publishExchange(t, c, x, "audit.x", false, []*weirpb.Header{{Key: "vip", Value: []byte("yes")}}, "h1")
			if !slices.Equal(resp.GetStreams(), []string{other}) {
				t.Errorf("headers route = %v", resp)
			}
			resp = publishExchange(t, c, hx, "", true, []*weirpb.Header{{Key: "kind", Value: []byte("sale")}}, "h2")
			if len(resp.GetStreams()) != 0 || !resp.GetUnroutable() {
				t.Errorf("unmatched headers, mandatory = %v", resp)
			}
			if got := fetchValues(t, c, other); !slices.Equal(got, []string{"h1"}) {
				t.Errorf("%s holds %v", other, got)
			}
			if u := exchangeNamed(t, c, hx).GetUnroutable(); u != 1 {
				t.Errorf("%s unroutable = %d, want 1", hx, u)
			}

			// Nothing matched: the alternate exchange takes it, so it is
			// not unroutable even when mandatory.
			resp = publishExchange(t, c, x, "shipping.eu", true, nil, "s1")
			if !slices.Equal(resp.GetStreams(), []string{lost}) || resp.GetUnroutable() {
				t.Errorf("to the alternate = %v", resp)
			}
			if got := fetchValues(t, c, lost); !slices.Equal(got, []string{"s1"}) {
				t.Errorf("%s holds %v", lost, got)
			}

			// Unbind: order.eu.* now reaches only the catch-all.
			unbind(t, c, &weirpb.BindRequest{Exchange: x, Destination: eu, Key: "order.eu.*"}, 0)
			unbind(t, c, &weirpb.BindRequest{Exchange: x, Destination: eu, Key: "order.eu.*"}, 0) // gone already: fine
			unbind(t, c, &weirpb.BindRequest{Exchange: p + "nox", Destination: eu}, connect.CodeNotFound)
			resp = publishExchange(t, c, x, "order.eu.paid", false, nil, "o4")
			if !slices.Equal(resp.GetStreams(), []string{all}) {
				t.Errorf("after Unbind = %v", resp)
			}

			// Delete the alternate: x's unmatched records are now
			// unroutable; not mandatory, they are dropped quietly.
			if _, err := c.DeleteExchange(ctx, connect.NewRequest(&weirpb.DeleteExchangeRequest{Name: alt})); err != nil {
				t.Fatal(err)
			}
			_, err = c.DeleteExchange(ctx, connect.NewRequest(&weirpb.DeleteExchangeRequest{Name: alt}))
			wantCode(t, "DeleteExchange twice", err, connect.CodeNotFound)
			resp = publishExchange(t, c, x, "shipping.us", false, nil, "s2")
			if len(resp.GetStreams()) != 0 || resp.GetUnroutable() {
				t.Errorf("unroutable, not mandatory = %v", resp)
			}
			resp = publishExchange(t, c, x, "shipping.us", true, nil, "s3")
			if !resp.GetUnroutable() {
				t.Errorf("unroutable, mandatory = %v", resp)
			}
			if u := exchangeNamed(t, c, x).GetUnroutable(); u != 2 {
				t.Errorf("%s unroutable = %d, want 2", x, u)
			}
			// Deleting hx drops x's binding to it.
			if _, err := c.DeleteExchange(ctx, connect.NewRequest(&weirpb.DeleteExchangeRequest{Name: hx})); err != nil {
				t.Fatal(err)
			}
			if b := exchangeNamed(t, c, x).GetBindings(); len(b) != 1 || b[0].GetDestination() != all {
				t.Errorf("bindings after deleting %s: %v", hx, b)
			}

			_, err = c.PublishExchange(ctx, connect.NewRequest(&weirpb.PublishExchangeRequest{Exchange: p + "nox", Records: []*weirpb.Record{{Value: []byte("v")}}}))
			wantCode(t, "PublishExchange to no exchange", err, connect.CodeNotFound)
			_, err = c.PublishExchange(ctx, connect.NewRequest(&weirpb.PublishExchangeRequest{Exchange: x}))
			wantCode(t, "PublishExchange of nothing", err, connect.CodeInvalidArgument)
			_, err = c.DeleteExchange(ctx, connect.NewRequest(&weirpb.DeleteExchangeRequest{}))
			wantCode(t, "DeleteExchange without a name", err, connect.CodeInvalidArgument)
		})
	}
}

// declareExchange declares an exchange and wants code (0: success).
func declareExchange(t *testing.T, c weirpbconnect.WeirClient, name, typ, alt string, code connect.Code) *weirpb.ExchangeInfo {
	t.Helper()
	resp, err := c.DeclareExchange(t.Context(), connect.NewRequest(&weirpb.DeclareExchangeRequest{Name: name, Type: typ, AlternateExchange: alt}))
	if code == 0 {
		if err != nil {
			t.Fatalf("DeclareExchange %s: %v", name, err)
		}
		return resp.Msg
	}
	wantCode(t, "DeclareExchange "+name+" "+typ, err, code)
	return nil
}

// bind binds and wants code (0: success).
func bind(t *testing.T, c weirpbconnect.WeirClient, req *weirpb.BindRequest, code connect.Code) {
	t.Helper()
	_, err := c.Bind(t.Context(), connect.NewRequest(req))
	wantResult(t, "Bind", req, err, code)
}

// unbind unbinds and wants code (0: success).
func unbind(t *testing.T, c weirpbconnect.WeirClient, req *weirpb.BindRequest, code connect.Code) {
	t.Helper()
	_, err := c.Unbind(t.Context(), connect.NewRequest(req))
	wantResult(t, "Unbind", req, err, code)
}

func wantResult(t *testing.T, what string, req *weirpb.BindRequest, err error, code connect.Code) {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("%s %v: %v", what, req, err)
		}
		return
	}
	wantCode(t, what, err, code)
}

func publishExchange(t *testing.T, c weirpbconnect.WeirClient, x, key string, mandatory bool, headers []*weirpb.Header, values ...string) *weirpb.PublishExchangeResponse {
	t.Helper()
	req := &weirpb.PublishExchangeRequest{Exchange: x, RoutingKey: key, Mandatory: mandatory}
	for _, v := range values {
		req.Records = append(req.Records, &weirpb.Record{Value: []byte(v), Headers: headers})
	}
	resp, err := c.PublishExchange(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("PublishExchange %s %s: %v", x, key, err)
	}
	return resp.Msg
}

func exchangeNamed(t *testing.T, c weirpbconnect.WeirClient, name string) *weirpb.ExchangeInfo {
	t.Helper()
	list, err := c.ListExchanges(t.Context(), connect.NewRequest(&weirpb.ListExchangesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Msg.GetExchanges() {
		if e.GetName() == name {
			return e
		}
	}
	t.Fatalf("exchange %s not listed", name)
	return nil
}

// fetchValues reads partition 0 of a stream from its start.
func fetchValues(t *testing.T, c weirpbconnect.WeirClient, stream string) []string {
	t.Helper()
	f, err := c.Fetch(t.Context(), connect.NewRequest(&weirpb.FetchRequest{Stream: stream}))
	if err != nil {
		t.Fatalf("Fetch %s: %v", stream, err)
	}
	return values(f.Msg.GetRecords())
}
