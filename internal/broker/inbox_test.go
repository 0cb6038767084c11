package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weirmq/weir/internal/broker/route"
)

func TestInboxLifecycle(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "orders"})

	name, err := b.CreateInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !IsInbox(name) || len(name) != len(InboxPrefix)+32 {
		t.Fatalf("inbox name %q", name)
	}
	other, err := b.CreateInbox(ctx)
	if err != nil || other == name {
		t.Fatalf("second inbox %q (%v): names must differ", other, err)
	}
	// Replies are published like records to any stream, without dedup:
	// two replies with one message-id are both kept.
	reply := Record{Value: []byte("42"), Headers: []Header{{Key: HeaderMessageID, Value: []byte("m1")}}}
	publish(t, b, name, reply, reply)
	if got := fetchAll(t, b, name, 0, 0); len(got) != 2 || string(got[1].Value) != "42" {
		t.Fatalf("inbox holds %d records, want 2", len(got))
	}
	for _, s := range b.ListStreams() {
		if IsInbox(s.Config.Name) {
			t.Fatalf("ListStreams shows inbox %q", s.Config.Name)
		}
	}
	if _, err := b.DescribeStream(name); err != nil {
		t.Fatalf("describe inbox: %v", err)
	}

	// Durable state naming an inbox is refused: it would outlive it.
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "x", Type: route.Fanout}); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, "x", Binding{Destination: name}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bind to an inbox: %v, want invalid argument", err)
	}
	if _, err := b.CreateSubscription(ctx, SubscriptionConfig{Stream: name, Name: "s"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("shared subscription on an inbox: %v, want invalid argument", err)
	}
	for _, create := range []func() error{
		func() error { _, err := b.CreateStream(ctx, StreamConfig{Name: InboxPrefix + "mine"}); return err },
		func() error { _, err := b.CreateQueue(ctx, QueueConfig{Name: InboxPrefix + "q"}); return err },
	} {
		if err := create(); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "reserved") {
			t.Fatalf("a stream in the inbox namespace: %v, want a reserved-name error", err)
		}
	}

	// Deleting the inbox removes its files; the other one stays until the
	// broker closes, which removes it too.
	files := func() []string {
		entries, _ := os.ReadDir(filepath.Join(dir, "streams"))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	before := len(files())
	if err := b.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, name, []Record{reply}); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("publish to a deleted inbox: %v, want stream not found", err)
	}
	if n := len(files()); n != before-1 {
		t.Fatalf("%d stream directories after deleting an inbox, want %d", n, before-1)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(files()); n != 1 {
		t.Fatalf("stream directories after close: %v, want only the stream's", files())
	}
	b = openBroker(t, dir)
	defer b.Close()
	if got := fetchAll(t, b, "orders", 0, 0); len(got) != 0 {
		t.Fatalf("orders holds %d records", len(got))
	}
}

// A server that dies with inboxes open leaves their directories; the next
// start removes them, and they are gone.
func TestInboxGoneAfterCrash(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	name, err := b.CreateInbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, name, Record{Value: []byte("reply")})
	// What a crash leaves: the logs stop, nothing is cleaned up.
	b.cancel()
	b.bg.Wait()
	b.closeStreams()
	b.state.Close()
	if entries, _ := os.ReadDir(filepath.Join(dir, "streams")); len(entries) != 1 {
		t.Fatalf("%d stream directories before restart, want the inbox's", len(entries))
	}

	b = openBroker(t, dir)
	defer b.Close()
	if _, err := b.DescribeStream(name); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("inbox after restart: %v, want stream not found", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "streams")); len(entries) != 0 {
		t.Fatalf("stream directories after restart: %d, want none", len(entries))
	}
}

func TestPublishToRecipientList(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	for _, s := range []string{"billing", "shipping", "audit-eu", "audit-us"} {
		createStream(t, b, StreamConfig{Name: s, Partitions: 2})
	}
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "audit", Type: route.Direct}); err != nil {
		t.Fatal(err)
	}
	for _, region := range []string{"eu", "us"} {
		if err := b.Bind(ctx, "audit", Binding{Destination: "audit-" + region, Key: region}); err != nil {
			t.Fatal(err)
		}
	}
	dests := []Destination{{Stream: "billing"}, {Stream: "shipping"}, {Exchange: "audit", RoutingKey: "eu"}, {Exchange: "audit", RoutingKey: "apac"}}
	recs := []Record{
		{Key: []byte("o-1"), Value: []byte("order 1"), Headers: []Header{{Key: HeaderMessageID, Value: []byte("id-1")}}},
		{Key: []byte("o-2"), Value: []byte("order 2"), Headers: []Header{{Key: HeaderMessageID, Value: []byte("id-2")}}},
	}
	res, err := b.PublishTo(ctx, dests, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || len(res[0].Results) != 2 || len(res[1].Results) != 2 {
		t.Fatalf("results %+v", res)
	}
	if !slices.Equal(res[2].Streams, []string{"audit-eu"}) || len(res[3].Streams) != 0 {
		t.Fatalf("exchange destinations reached %v and %v, want [audit-eu] and nothing", res[2].Streams, res[3].Streams)
	}
	count := func(stream string) int {
		n := 0
		for p := range int32(2) {
			n += len(fetchAll(t, b, stream, p, 0))
		}
		return n
	}
	for stream, want := range map[string]int{"billing": 2, "shipping": 2, "audit-eu": 2, "audit-us": 0} {
		if got := count(stream); got != want {
			t.Fatalf("%s holds %d records, want %d", stream, got, want)
		}
	}
	if xs := b.ListExchanges(); xs[0].Unroutable != 2 {
		t.Fatalf("audit counted %d unroutable, want 2", xs[0].Unroutable)
	}
	// A retry (same message-ids) stores nothing twice.
	res, err = b.PublishTo(ctx, dests[:2], recs)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Results[0].Duplicate || !res[1].Results[1].Duplicate || count("billing") != 2 {
		t.Fatalf("retry was stored again: %+v", res)
	}

	// Bad lists are refused before anything is stored.
	for _, bad := range [][]Destination{
		nil,
		{{}},
		{{Stream: "billing", Exchange: "audit"}},
		{{Stream: "billing", RoutingKey: "eu"}},
		{{Stream: "billing"}, {Stream: "billing"}},
		make([]Destination, MaxDestinations+1),
	} {
		if _, err := b.PublishTo(ctx, bad, recs); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("PublishTo(%v): %v, want invalid argument", bad, err)
		}
	}
	fresh := []Record{{Value: []byte("x")}}
	if _, err := b.PublishTo(ctx, []Destination{{Stream: "billing"}, {Stream: "nope"}}, fresh); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("missing stream: %v", err)
	}
	if _, err := b.PublishTo(ctx, []Destination{{Stream: "billing"}, {Exchange: "nope"}}, fresh); !errors.Is(err, ErrExchangeNotFound) {
		t.Fatalf("missing exchange: %v", err)
	}
	if _, err := b.PublishTo(ctx, []Destination{{Stream: "billing"}}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no records: %v", err)
	}
	if count("billing") != 2 {
		t.Fatalf("a refused call stored records in billing")
	}
}
