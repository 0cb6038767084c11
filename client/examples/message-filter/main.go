// Command message-filter reads only the records it is interested in: it
// is a consumer of a shared subscription whose CEL filter the server
// evaluates, so records the filter rejects are skipped by the server and
// never sent to the consumer. The publisher knows nothing of the filters.
//
//	go run ./examples/message-filter -server localhost:8080 -role consume -subscription eu-orders -filter "headers['region'] == 'eu'"
//	go run ./examples/message-filter -server localhost:8080 -role publish -n 9
//
// The publisher writes orders "order-N" with a region header that takes
// the -regions in turn and prints "published order=ID region=R" per
// record. A consumer prints "ready subscription=NAME" once subscribed,
// then "received subscription=NAME order=ID region=R" per record. The
// filter sees key, value, headers, timestamp, partition, offset and stream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"strings"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
	role := flag.String("role", "consume", "publish or consume")
	stream := flag.String("stream", "orders", "stream of orders")
	partitions := flag.Int("partitions", 3, "partitions of the stream, if it is created")
	n := flag.Int("n", 9, "publish: number of orders")
	regions := flag.String("regions", "eu,us,apac", "publish: comma-separated regions the orders take in turn")
	subscription := flag.String("subscription", "eu-orders", "consume: shared subscription, created if it does not exist")
	filter := flag.String("filter", "headers['region'] == 'eu'", "consume: CEL filter of a subscription it creates")
	count := flag.Int("count", 0, "consume: stop after this many records (0: run until interrupted)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	if err := example.Created(client.CreateStream(ctx, weir.StreamConfig{Name: *stream, Partitions: int32(*partitions)})); err != nil {
		log.Fatal(err)
	}

	switch *role {
	case "publish":
		publish(ctx, client, *stream, *n, strings.Split(*regions, ","))
	case "consume":
		consume(ctx, stop, client, *stream, *subscription, *filter, *count)
	default:
		log.Fatalf("-role %q: want publish or consume", *role)
	}
}

// publish writes n orders, each with a region header.
func publish(ctx context.Context, client *weir.Client, stream string, n int, regions []string) {
	for i := range n {
		id := fmt.Sprintf("order-%d", i)
		region := regions[i%len(regions)]
		_, err := client.Publish(ctx, stream, weir.Record{
			Key:     []byte(id),
			Value:   []byte(fmt.Sprintf(`{"id":%q,"region":%q}`, id, region)),
			Headers: []weir.Header{{Key: "region", Value: []byte(region)}},
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("published order=%s region=%s\n", id, region)
	}
}

// consume creates the filtered subscription, if need be, from the stream's
// first record, and consumes it.
func consume(ctx context.Context, stop context.CancelFunc, client *weir.Client, stream, subscription, filter string, count int) {
	_, err := client.CreateSubscription(ctx, weir.SubscriptionConfig{
		Stream: stream, Name: subscription, Filter: filter, Start: weir.Earliest(),
	})
	switch {
	case errors.Is(err, weir.ErrAlreadyExists):
		// The filter is the subscription's: the one it was created with.
		info, err := client.DescribeSubscription(ctx, stream, subscription)
		if err != nil {
			log.Fatal(err)
		}
		if info.Config.Filter != filter {
			log.Printf("subscription %s exists with filter %q, which applies rather than %q", subscription, info.Config.Filter, filter)
		}
	case err != nil:
		log.Fatal(err) // a filter that does not compile: the server says why
	}
	limit := example.NewLimit(count, stop)
	handler := func(ctx context.Context, m *weir.Message) error {
		// Past -count it returns an error: stopping, another consumer gets
		// the record.
		return limit.Handle(ctx, func() {
			region, _ := m.Header("region")
			fmt.Printf("received subscription=%s order=%s region=%s\n", subscription, m.Key, region)
		})
	}
	consumer, err := client.Consume(ctx, stream, handler, weir.Shared(subscription))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready subscription=%s\n", subscription)
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}
