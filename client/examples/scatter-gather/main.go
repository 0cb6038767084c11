// Command scatter-gather asks several vendors for a quote at once and takes
// the best one that arrives in time. The request goes to a fanout exchange
// bound to one queue per vendor; each vendor answers from its queue, and
// the requester gathers the answers with weir.ScatterGather until every
// vendor answered or the deadline passed, then aggregates them: the lowest
// price wins. A vendor too slow for the deadline is left out.
//
//	go run ./examples/scatter-gather -server localhost:8080 -role vendor -name acme -price 120
//	go run ./examples/scatter-gather -server localhost:8080 -role vendor -name initech -price 80 -delay 3s
//	go run ./examples/scatter-gather -server localhost:8080 -role request -item widgets -timeout 1s
//
// A vendor prints "ready vendor=NAME" once it serves its queue
// (EXCHANGE.NAME), then "quoted vendor=NAME price=P item=I" per request.
// The requester prints "quote vendor=NAME price=P" per quote gathered and
// then "best vendor=NAME price=P quotes=N elapsed=D", or "no quotes elapsed=D" (and
// exits with status 1).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

// errNoQuotes is the aggregator's answer when no vendor answered in time.
var errNoQuotes = errors.New("no quotes")

func main() {
	server := example.Server()
	role := flag.String("role", "request", "request or vendor")
	exchange := flag.String("exchange", "quotes", "fanout exchange the requests go through")
	item := flag.String("item", "widgets", "request: what to ask a price for")
	timeout := flag.Duration("timeout", time.Second, "request: how long to gather quotes")
	replies := flag.Int("replies", 0, "request: stop as soon as this many quotes arrived (0: gather until the deadline)")
	name := flag.String("name", "acme", "vendor: the vendor's name; its queue is EXCHANGE.NAME")
	price := flag.Int("price", 100, "vendor: the price it quotes")
	delay := flag.Duration("delay", 0, "vendor: time it takes to answer")
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
	case "request":
		if !request(ctx, client, *exchange, *item, *timeout, *replies) {
			os.Exit(1)
		}
	case "vendor":
		vendor(ctx, client, *exchange, *name, *price, *delay)
	default:
		log.Fatalf("-role %q: want request or vendor", *role)
	}
}

// quote is a vendor's answer.
type quote struct {
	vendor string
	price  int
}

// offer is what the aggregator makes of the quotes: the best one, and how
// many there were.
type offer struct {
	quote
	quotes int
}

// best is the aggregator: the cheapest of the quotes that came in time.
func best(replies []weir.Record) (offer, error) {
	var quotes []quote
	for _, r := range replies {
		price, err := strconv.Atoi(string(r.Value))
		if err != nil {
			log.Printf("ignoring a quote of %q: %v", r.Value, err)
			continue
		}
		q := quote{vendor: string(r.Key), price: price}
		fmt.Printf("quote vendor=%s price=%d\n", q.vendor, q.price)
		quotes = append(quotes, q)
	}
	if len(quotes) == 0 {
		return offer{}, errNoQuotes
	}
	return offer{slices.MinFunc(quotes, func(a, b quote) int { return a.price - b.price }), len(quotes)}, nil
}

// request scatters one request to every vendor and gathers their quotes;
// it reports whether there was one.
func request(ctx context.Context, client *weir.Client, exchange, item string, timeout time.Duration, replies int) bool {
	start := time.Now()
	o, err := weir.ScatterGather(ctx, client, weir.ToExchange(exchange, ""), weir.Record{Value: []byte(item)},
		weir.GatherOptions{Replies: replies, Timeout: timeout}, best)
	elapsed := time.Since(start)
	switch {
	case errors.Is(err, errNoQuotes), errors.Is(err, weir.ErrNoRoute):
		// ErrNoRoute: no vendor's queue is bound to the exchange.
		fmt.Printf("no quotes elapsed=%v\n", elapsed.Round(time.Millisecond))
		return false
	case err != nil:
		log.Fatal(err)
	}
	fmt.Printf("best vendor=%s price=%d quotes=%d elapsed=%v\n", o.vendor, o.price, o.quotes, elapsed.Round(time.Millisecond))
	return true
}

// vendor binds its queue to the exchange and answers every request in it
// with its price.
func vendor(ctx context.Context, client *weir.Client, exchange, name string, price int, delay time.Duration) {
	queue := exchange + "." + name
	if err := example.Created(client.CreateQueue(ctx, weir.QueueConfig{Name: queue})); err != nil {
		log.Fatal(err)
	}
	if err := client.Bind(ctx, exchange, weir.Binding{Destination: queue}); err != nil {
		log.Fatal(err)
	}
	consumer, err := client.Respond(ctx, queue, func(ctx context.Context, req *weir.Message) (weir.Record, error) {
		if err := example.Sleep(ctx, delay); err != nil {
			return weir.Record{}, err
		}
		fmt.Printf("quoted vendor=%s price=%d item=%s\n", name, price, req.Value)
		return weir.Record{Key: []byte(name), Value: []byte(strconv.Itoa(price))}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready vendor=%s\n", name)
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}
