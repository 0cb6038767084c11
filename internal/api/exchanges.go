package api

import (
	"context"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/broker/route"
)

// DeclareExchange creates an exchange, or checks that the one of that name
// has the same type and alternate exchange (AlreadyExists if not).
func (s *Service) DeclareExchange(ctx context.Context, req *connect.Request[weirpb.DeclareExchangeRequest]) (*connect.Response[weirpb.ExchangeInfo], error) {
	msg := req.Msg
	if msg.GetName() == "" {
		return nil, invalidArgument("name is required")
	}
	if msg.GetType() == "" {
		return nil, invalidArgument("type is required: direct, topic, fanout or headers")
	}
	info, err := s.broker.DeclareExchange(ctx, broker.ExchangeConfig{
		Name: msg.GetName(), Type: route.Kind(msg.GetType()), AlternateExchange: msg.GetAlternateExchange(),
	})
	if err != nil {
		return nil, s.fail(ctx, "DeclareExchange", err)
	}
	return connect.NewResponse(exchangeInfoToProto(info)), nil
}

// ListExchanges describes every exchange, by name.
func (s *Service) ListExchanges(ctx context.Context, req *connect.Request[weirpb.ListExchangesRequest]) (*connect.Response[weirpb.ListExchangesResponse], error) {
	out := &weirpb.ListExchangesResponse{}
	for _, info := range s.broker.ListExchanges() {
		if broker.Visible(ctx, auth.ResourceExchange, info.Config.Name) {
			out.Exchanges = append(out.Exchanges, exchangeInfoToProto(info))
		}
	}
	return connect.NewResponse(out), nil
}

// DeleteExchange deletes an exchange and every binding to it.
func (s *Service) DeleteExchange(ctx context.Context, req *connect.Request[weirpb.DeleteExchangeRequest]) (*connect.Response[weirpb.DeleteExchangeResponse], error) {
	if req.Msg.GetName() == "" {
		return nil, invalidArgument("name is required")
	}
	if err := s.broker.DeleteExchange(ctx, req.Msg.GetName()); err != nil {
		return nil, s.fail(ctx, "DeleteExchange", err)
	}
	return connect.NewResponse(&weirpb.DeleteExchangeResponse{}), nil
}

// Bind adds a binding from an exchange to a stream or another exchange;
// binding twice changes nothing.
func (s *Service) Bind(ctx context.Context, req *connect.Request[weirpb.BindRequest]) (*connect.Response[weirpb.BindResponse], error) {
	b, err := bindingFromProto(req.Msg)
	if err != nil {
		return nil, err
	}
	if err := s.broker.Bind(ctx, req.Msg.GetExchange(), b); err != nil {
		return nil, s.fail(ctx, "Bind", err)
	}
	return connect.NewResponse(&weirpb.BindResponse{}), nil
}

// Unbind removes a binding; removing one that is not there is not an error.
func (s *Service) Unbind(ctx context.Context, req *connect.Request[weirpb.BindRequest]) (*connect.Response[weirpb.BindResponse], error) {
	b, err := bindingFromProto(req.Msg)
	if err != nil {
		return nil, err
	}
	if err := s.broker.Unbind(ctx, req.Msg.GetExchange(), b); err != nil {
		return nil, s.fail(ctx, "Unbind", err)
	}
	return connect.NewResponse(&weirpb.BindResponse{}), nil
}

// PublishExchange routes records through an exchange to every stream they
// reach. A mandatory publish that reaches none answers with unroutable set:
// nothing was stored, and the publisher keeps its records.
func (s *Service) PublishExchange(ctx context.Context, req *connect.Request[weirpb.PublishExchangeRequest]) (*connect.Response[weirpb.PublishExchangeResponse], error) {
	msg := req.Msg
	if msg.GetExchange() == "" {
		return nil, invalidArgument("exchange is required")
	}
	if len(msg.GetRecords()) == 0 {
		return nil, invalidArgument("records: nothing to publish")
	}
	recs, err := recordsFromProto("records", msg.GetRecords())
	if err != nil {
		return nil, err
	}
	streams, err := s.broker.PublishExchange(ctx, msg.GetExchange(), msg.GetRoutingKey(), recs)
	if err != nil {
		return nil, s.fail(ctx, "PublishExchange", err)
	}
	// The metrics count the batch once per stream reached (a headers
	// exchange may have sent some records elsewhere: an overcount).
	for _, st := range streams {
		s.countPublished(st, recs, nil)
	}
	paceProduce(ctx, recs)
	return connect.NewResponse(&weirpb.PublishExchangeResponse{
		Streams:    streams,
		Unroutable: msg.GetMandatory() && len(streams) == 0,
	}), nil
}

// bindingFromProto checks a Bind or Unbind request and returns its binding.
func bindingFromProto(msg *weirpb.BindRequest) (broker.Binding, error) {
	switch {
	case msg.GetExchange() == "":
		return broker.Binding{}, invalidArgument("exchange is required")
	case msg.GetDestination() == "":
		return broker.Binding{}, invalidArgument("destination is required")
	}
	b := broker.Binding{Destination: msg.GetDestination(), ToExchange: msg.GetToExchange(), Key: msg.GetKey()}
	if len(msg.GetArgs()) > 0 {
		b.Args = msg.GetArgs()
	}
	return b, nil
}

func exchangeInfoToProto(info broker.ExchangeInfo) *weirpb.ExchangeInfo {
	out := &weirpb.ExchangeInfo{
		Name:              info.Config.Name,
		Type:              string(info.Config.Type),
		AlternateExchange: info.Config.AlternateExchange,
		Unroutable:        info.Unroutable,
		Bindings:          make([]*weirpb.ExchangeBinding, len(info.Bindings)),
	}
	for i, b := range info.Bindings {
		out.Bindings[i] = &weirpb.ExchangeBinding{Destination: b.Destination, ToExchange: b.ToExchange, Key: b.Key, Args: b.Args}
	}
	return out
}
