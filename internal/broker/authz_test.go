package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker/route"
)

// TestAuthorization checks the broker's entry points against a principal
// in the context: what the rules allow works, the rest is ErrForbidden
// naming the resource, a context without identity is the server's own
// work, and an identity not yet filled refuses everything.
func TestAuthorization(t *testing.T) {
	b := openBroker(t, t.TempDir())
	admin := context.Background()
	if _, err := b.CreateStream(admin, StreamConfig{Name: "orders.eu", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateStream(admin, StreamConfig{Name: "payments", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeclareExchange(admin, ExchangeConfig{Name: "ex", Type: route.Fanout}); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(admin, "ex", Binding{Destination: "payments"}); err != nil {
		t.Fatal(err)
	}
	bob := WithPrincipal(context.Background(), auth.NewPrincipal("bob", false, []auth.Permission{
		{Resource: auth.ResourceStream, Name: "orders.*", Actions: []auth.Action{auth.ActionPublish, auth.ActionConsume}},
		{Resource: auth.ResourceExchange, Name: "ex", Actions: []auth.Action{auth.ActionPublish}},
		{Resource: auth.ResourceGroup, Name: "g1", Actions: []auth.Action{auth.ActionConsume}},
	}))
	rec := []Record{{Value: []byte("v")}}
	if _, err := b.Publish(bob, "orders.eu", rec); err != nil {
		t.Errorf("publish to an allowed stream: %v", err)
	}
	if _, err := b.Fetch(bob, "orders.eu", 0, 0, 1<<20, 0); err != nil {
		t.Errorf("fetch from an allowed stream: %v", err)
	}
	// The exchange routes into payments, which bob may not publish to
	// directly: publishing through the exchange needs only the exchange.
	if reached, err := b.PublishExchange(bob, "ex", "", rec); err != nil || len(reached) != 1 {
		t.Errorf("publish to an allowed exchange: %v %v", reached, err)
	}
	if _, err := b.JoinGroup(bob, JoinOptions{Group: "g1", Streams: []string{"orders.eu"}}); err != nil && errors.Is(err, ErrForbidden) {
		t.Errorf("join an allowed group: %v", err)
	}
	refused := []struct {
		what string
		res  auth.Resource
		err  error
	}{
		{"publish payments", auth.ResourceStream, func() error { _, err := b.Publish(bob, "payments", rec); return err }()},
		{"fetch payments", auth.ResourceStream, func() error { _, err := b.Fetch(bob, "payments", 0, 0, 1<<20, 0); return err }()},
		{"create stream", auth.ResourceStream, func() error {
			_, err := b.CreateStream(bob, StreamConfig{Name: "orders.new", Partitions: 1})
			return err
		}()},
		{"delete stream", auth.ResourceStream, b.DeleteStream(bob, "orders.eu")},
		{"declare exchange", auth.ResourceExchange, func() error {
			_, err := b.DeclareExchange(bob, ExchangeConfig{Name: "ex2", Type: route.Fanout})
			return err
		}()},
		{"bind", auth.ResourceExchange, b.Bind(bob, "ex", Binding{Destination: "orders.eu"})},
		{"join group g2", auth.ResourceGroup, func() error {
			_, err := b.JoinGroup(bob, JoinOptions{Group: "g2", Streams: []string{"orders.eu"}})
			return err
		}()},
		{"create queue", auth.ResourceQueue, func() error { _, err := b.CreateQueue(bob, QueueConfig{Name: "jobs"}); return err }()},
		{"connector", auth.ResourceAny, b.PutConnector(bob, "c1", []byte("{}"), true)},
		{"publish to", auth.ResourceStream, func() error {
			_, err := b.PublishTo(bob, []Destination{{Stream: "orders.eu"}, {Stream: "payments"}}, rec)
			return err
		}()},
	}
	for _, r := range refused {
		var f *ForbiddenError
		if !errors.Is(r.err, ErrForbidden) || !errors.As(r.err, &f) || f.Resource != r.res || f.User != "bob" {
			t.Errorf("%s: %v, want ErrForbidden on a %s", r.what, r.err, r.res)
		}
	}
	if _, err := b.DescribeStream("orders.eu"); err != nil {
		t.Errorf("the refused delete removed the stream: %v", err)
	}
	// No identity: the server's own work, not checked.
	if _, err := b.Publish(context.Background(), "payments", rec); err != nil {
		t.Errorf("publish without identity: %v", err)
	}
	// An identity slot not yet filled (a connection before SASL) refuses.
	id := &Identity{}
	pending := WithIdentity(context.Background(), id)
	if _, err := b.Publish(pending, "orders.eu", rec); !errors.Is(err, ErrForbidden) {
		t.Errorf("publish with an empty identity: %v", err)
	}
	id.Set(auth.Unrestricted("alice"))
	if _, err := b.Publish(pending, "payments", rec); err != nil {
		t.Errorf("publish once the identity is set: %v", err)
	}
	if !Visible(bob, auth.ResourceStream, "orders.eu") || Visible(bob, auth.ResourceStream, "payments") || !Visible(admin, auth.ResourceStream, "payments") {
		t.Error("Visible")
	}
}
