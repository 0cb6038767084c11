// Command pubsub is publish-subscribe through a fanout exchange: the
// publisher does not know who listens, and every subscriber gets every
// record published while it is subscribed.
//
// A durable subscriber has a stream of its own, bound to the exchange, and
// reads it as a consumer group: what is published while it is down waits in
// its stream, and it gets it when it comes back, from where it left off. An
// ephemeral subscriber tails a shared stream bound to the exchange without
// keeping a position: it gets only what is published while it runs.
//
//	go run ./examples/pubsub -server localhost:8080 -role durable -name billing
//	go run ./examples/pubsub -server localhost:8080 -role ephemeral -name dashboard
//	go run ./examples/pubsub -server localhost:8080 -role publish -n 5
//
// The publisher prints "published value=V streams=S,..." per record (or
// "unroutable value=V" while nobody subscribed); a subscriber prints
// "ready subscriber=NAME kind=KIND" once subscribed, then
// "received subscriber=NAME value=V" per record.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"strings"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
	role := flag.String("role", "publish", "publish, durable or ephemeral")
	exchange := flag.String("exchange", "news", "fanout exchange to publish to and subscribe at")
	n := flag.Int("n", 5, "publish: number of records")
	prefix := flag.String("prefix", "news", "publish: records are PREFIX-0, PREFIX-1, ...")
	name := flag.String("name", "subscriber", "durable, ephemeral: the subscriber's name; a durable subscriber's stream is EXCHANGE.NAME and its group NAME")
	count := flag.Int("count", 0, "durable, ephemeral: stop after this many records (0: run until interrupted)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	// Declaring an exchange that exists with the same type changes nothing.
	if _, err := client.DeclareExchange(ctx, weir.ExchangeConfig{Name: *exchange, Type: weir.ExchangeFanout}); err != nil {
		log.Fatal(err)
	}

	switch *role {
	case "publish":
		publish(ctx, client, *exchange, *prefix, *n)
	case "durable":
		if *name == "live" {
			log.Fatalf("-name live: %s.live is the ephemeral subscribers' stream", *exchange)
		}
		// The subscriber's own stream, bound to the exchange: it holds
		// what is published while the subscriber is down.
		stream := *exchange + "." + *name
		subscribe(ctx, stop, client, *exchange, stream, weir.StreamConfig{Name: stream}, *name, "durable", *count,
			weir.Group(*name), weir.Start(weir.Earliest()))
	case "ephemeral":
		// One stream for every ephemeral subscriber, kept an hour: they
		// read its tail and keep no position.
		stream := *exchange + ".live"
		subscribe(ctx, stop, client, *exchange, stream, weir.StreamConfig{Name: stream, RetentionAge: time.Hour}, *name, "ephemeral", *count,
			weir.Ephemeral())
	default:
		log.Fatalf("-role %q: want publish, durable or ephemeral", *role)
	}
}

// publish routes n records through the exchange to every bound stream.
func publish(ctx context.Context, client *weir.Client, exchange, prefix string, n int) {
	for i := range n {
		value := fmt.Sprintf("%s-%d", prefix, i)
		// Mandatory: the server says when no stream took the record.
		streams, unroutable, err := client.PublishExchange(ctx, exchange, "", true, weir.Record{Value: []byte(value)})
		if err != nil {
			log.Fatal(err)
		}
		if unroutable {
			fmt.Printf("unroutable value=%s\n", value)
			continue
		}
		fmt.Printf("published value=%s streams=%s\n", value, strings.Join(streams, ","))
	}
}

// subscribe creates and binds the subscriber's stream, if need be, and
// prints what it reads there.
func subscribe(ctx context.Context, stop context.CancelFunc, client *weir.Client, exchange, stream string, cfg weir.StreamConfig,
	name, kind string, count int, opts ...weir.ConsumeOption) {
	if err := example.Created(client.CreateStream(ctx, cfg)); err != nil {
		log.Fatal(err)
	}
	// Binding twice changes nothing.
	if err := client.Bind(ctx, exchange, weir.Binding{Destination: stream}); err != nil {
		log.Fatal(err)
	}
	limit := example.NewLimit(count, stop)
	handler := func(ctx context.Context, m *weir.Message) error {
		// Past -count it returns an error: stopping, a durable subscriber
		// gets the record next time.
		return limit.Handle(ctx, func() {
			fmt.Printf("received subscriber=%s value=%s\n", name, m.Value)
		})
	}
	consumer, err := client.Consume(ctx, stream, handler, opts...)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready subscriber=%s kind=%s\n", name, kind)
	// A signal (or -count) ends the consumer; a group consumer commits
	// its position as it stops.
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}
