package weir

import (
	"context"
	"fmt"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// ExchangeType is how an exchange matches records to its bindings.
type ExchangeType string

// The exchange types.
const (
	// ExchangeDirect routes a record to the bindings whose key is its
	// routing key.
	ExchangeDirect ExchangeType = "direct"
	// ExchangeTopic routes a record to the bindings whose key, a pattern of
	// dot-separated words ("*" one word, "#" zero or more), matches its
	// routing key.
	ExchangeTopic ExchangeType = "topic"
	// ExchangeFanout routes every record to every binding.
	ExchangeFanout ExchangeType = "fanout"
	// ExchangeHeaders routes a record to the bindings whose Args match its
	// headers: all of them, or any with "x-match": "any".
	ExchangeHeaders ExchangeType = "headers"
)

// ExchangeConfig declares an exchange: a router of records to streams (and
// queues, which are streams) and to other exchanges.
type ExchangeConfig struct {
	Name string
	Type ExchangeType
	// AlternateExchange receives the records no binding matched; empty:
	// none.
	AlternateExchange string
}

// Binding routes an exchange's matching records to a stream, or to another
// exchange when ToExchange is set.
type Binding struct {
	Destination string
	ToExchange  bool
	Key         string            // direct and topic exchanges
	Args        map[string]string // headers exchanges
}

// ExchangeInfo describes an exchange.
type ExchangeInfo struct {
	Config   ExchangeConfig
	Bindings []Binding
	// Unroutable counts the records no binding (nor an alternate exchange)
	// took, since the server started.
	Unroutable int64
}

// DeclareExchange creates an exchange, or checks that the one of that name
// has the same settings: ErrAlreadyExists when not. A bad name or type is
// ErrInvalidArgument.
func (c *Client) DeclareExchange(ctx context.Context, cfg ExchangeConfig) (*ExchangeInfo, error) {
	resp, err := call(ctx, c, "declare exchange "+quote(cfg.Name), c.api.DeclareExchange, &weirpb.DeclareExchangeRequest{
		Name: cfg.Name, Type: string(cfg.Type), AlternateExchange: cfg.AlternateExchange,
	})
	if err != nil {
		return nil, err
	}
	return fromPBExchangeInfo(resp), nil
}

// ListExchanges describes every exchange, by name.
func (c *Client) ListExchanges(ctx context.Context) ([]ExchangeInfo, error) {
	resp, err := call(ctx, c, "list exchanges", c.api.ListExchanges, &weirpb.ListExchangesRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]ExchangeInfo, len(resp.GetExchanges()))
	for i, x := range resp.GetExchanges() {
		out[i] = *fromPBExchangeInfo(x)
	}
	return out, nil
}

// DeleteExchange deletes an exchange and every binding to it; ErrNotFound
// when there is none of that name.
func (c *Client) DeleteExchange(ctx context.Context, name string) error {
	_, err := call(ctx, c, "delete exchange "+quote(name), c.api.DeleteExchange, &weirpb.DeleteExchangeRequest{Name: name})
	return err
}

// Bind adds a binding to an exchange; binding twice changes nothing. It
// fails with ErrNotFound without the exchange or the destination, and
// ErrInvalidArgument for a bad topic pattern.
func (c *Client) Bind(ctx context.Context, exchange string, b Binding) error {
	_, err := call(ctx, c, "bind "+quote(exchange)+" to "+quote(b.Destination), c.api.Bind, toPBBindRequest(exchange, b))
	return err
}

// Unbind removes a binding from an exchange; removing one that is not
// there is not an error.
func (c *Client) Unbind(ctx context.Context, exchange string, b Binding) error {
	_, err := call(ctx, c, "unbind "+quote(exchange)+" from "+quote(b.Destination), c.api.Unbind, toPBBindRequest(exchange, b))
	return err
}

// PublishExchange routes records, all with one routing key, through an
// exchange and stores each in every stream it reaches (partitioned as
// Publish does); it returns once they are committed, with the streams
// reached. With mandatory set, records that reach no stream are returned:
// unroutable is true and nothing was stored. Without it they are dropped
// quietly (and counted in the exchange's Unroutable).
func (c *Client) PublishExchange(ctx context.Context, exchange, routingKey string, mandatory bool, records ...Record) (streams []string, unroutable bool, err error) {
	op := "publish to exchange " + quote(exchange)
	if len(records) == 0 {
		return nil, false, fmt.Errorf("%s: %w: no records", op, ErrInvalidArgument)
	}
	ctx, records, end := c.tracing.startPublish(ctx, exchange, nil, records)
	resp, err := call(ctx, c, op, c.api.PublishExchange, &weirpb.PublishExchangeRequest{
		Exchange: exchange, RoutingKey: routingKey, Records: toPBRecords(records), Mandatory: mandatory,
	})
	end(nil, err)
	if err != nil {
		return nil, false, err
	}
	return resp.GetStreams(), resp.GetUnroutable(), nil
}

func toPBBindRequest(exchange string, b Binding) *weirpb.BindRequest {
	return &weirpb.BindRequest{Exchange: exchange, Destination: b.Destination, ToExchange: b.ToExchange, Key: b.Key, Args: b.Args}
}

func fromPBExchangeInfo(pb *weirpb.ExchangeInfo) *ExchangeInfo {
	info := &ExchangeInfo{
		Config:     ExchangeConfig{Name: pb.GetName(), Type: ExchangeType(pb.GetType()), AlternateExchange: pb.GetAlternateExchange()},
		Unroutable: pb.GetUnroutable(),
	}
	for _, b := range pb.GetBindings() {
		info.Bindings = append(info.Bindings, Binding{Destination: b.GetDestination(), ToExchange: b.GetToExchange(), Key: b.GetKey(), Args: b.GetArgs()})
	}
	return info
}
