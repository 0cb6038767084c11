// Command topic-to-queue chains a topic exchange to several queues: each
// queue is bound to the exchange with routing-key patterns ("*" one word,
// "#" zero or more, words separated by "."), gets a copy of every event
// whose routing key matches, and has competing workers of its own, so that
// each event is processed once per queue it reached.
//
//	go run ./examples/topic-to-queue -server localhost:8080 -role work -queue billing -patterns 'order.*.paid' -name b1
//	go run ./examples/topic-to-queue -server localhost:8080 -role work -queue eu -patterns '*.eu.*' -name e1
//	go run ./examples/topic-to-queue -server localhost:8080 -role publish -n 12
//
// The publisher gives its events the routing keys of -keys in turn and
// prints "published value=V routing-key=K queues=Q,..." per event (or
// "unroutable value=V routing-key=K" when no pattern matched). A worker
// prints "ready queue=Q worker=NAME" once it works, then
// "processed queue=Q worker=NAME routing-key=K value=V" per event.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

// headerRoutingKey carries an event's routing key to the workers.
const headerRoutingKey = "routing-key"

func main() {
	server := example.Server()
	role := flag.String("role", "publish", "publish or work")
	exchange := flag.String("exchange", "events", "topic exchange")
	n := flag.Int("n", 12, "publish: number of events")
	keys := flag.String("keys", "order.eu.created,order.us.created,order.eu.paid,order.us.shipped", "publish: comma-separated routing keys the events take in turn")
	queue := flag.String("queue", "billing", "work: queue to work on, created and bound if need be")
	patterns := flag.String("patterns", "order.*.paid", "work: comma-separated patterns the queue is bound with")
	name := flag.String("name", "", "work: this worker's name (default: its process id)")
	prefetch := flag.Int("prefetch", 1, "work: events held at once")
	work := flag.Duration("work", 0, "work: time each event takes")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	// Declaring an exchange that exists with the same type changes nothing.
	if _, err := client.DeclareExchange(ctx, weir.ExchangeConfig{Name: *exchange, Type: weir.ExchangeTopic}); err != nil {
		log.Fatal(err)
	}

	switch *role {
	case "publish":
		publish(ctx, client, *exchange, *n, strings.Split(*keys, ","))
	case "work":
		if *name == "" {
			*name = strconv.Itoa(os.Getpid())
		}
		worker(ctx, client, *exchange, *queue, strings.Split(*patterns, ","), *name, *prefetch, *work)
	default:
		log.Fatalf("-role %q: want publish or work", *role)
	}
}

// publish routes n events through the exchange; each is stored in every
// queue whose pattern matches its routing key, and the call returns once
// all of them hold it.
func publish(ctx context.Context, client *weir.Client, exchange string, n int, keys []string) {
	for i := range n {
		value := fmt.Sprintf("event-%d", i)
		key := keys[i%len(keys)]
		rec := weir.Record{Value: []byte(value), Headers: []weir.Header{{Key: headerRoutingKey, Value: []byte(key)}}}
		queues, unroutable, err := client.PublishExchange(ctx, exchange, key, true, rec)
		if err != nil {
			log.Fatal(err)
		}
		if unroutable {
			fmt.Printf("unroutable value=%s routing-key=%s\n", value, key)
			continue
		}
		fmt.Printf("published value=%s routing-key=%s queues=%s\n", value, key, strings.Join(queues, ","))
	}
}

// worker creates and binds its queue, if need be, and is one of the
// queue's competing consumers.
func worker(ctx context.Context, client *weir.Client, exchange, queue string, patterns []string, name string, prefetch int, work time.Duration) {
	if err := example.Created(client.CreateQueue(ctx, weir.QueueConfig{Name: queue})); err != nil {
		log.Fatal(err)
	}
	for _, p := range patterns {
		// Binding twice changes nothing; a bad pattern is refused.
		if err := client.Bind(ctx, exchange, weir.Binding{Destination: queue, Key: p}); err != nil {
			log.Fatal(err)
		}
	}
	var mu sync.Mutex // one line at a time on stdout
	handler := func(ctx context.Context, m *weir.Message) error {
		if err := example.Sleep(ctx, work); err != nil {
			return err // stopping: another worker gets it
		}
		key, _ := m.Header(headerRoutingKey)
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("processed queue=%s worker=%s routing-key=%s value=%s\n", queue, name, key, m.Value)
		return nil
	}
	consumer, err := client.Consume(ctx, queue, handler, weir.Shared(""), weir.Prefetch(prefetch))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready queue=%s worker=%s\n", queue, name)
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}
