// Command recipient-list publishes one record to every destination named on
// its command line in a single call (Client.PublishTo): streams and queues
// by name, exchanges as exchange:NAME:ROUTING-KEY. The record carries a
// message-id, so running the command again with the same -id (a retry after
// a timeout, say) stores nothing twice.
//
//	go run ./examples/recipient-list -server localhost:8080 -id order-42 -value 'order 42' billing shipping exchange:audit:order.eu
//
// Missing streams are created (with -create); exchanges must exist. It
// prints "message-id=ID", then per destination
// "stored dest=NAME partition=P offset=O duplicate=BOOL" for a stream,
// "routed dest=exchange:NAME:KEY streams=S,..." for an exchange, or
// "unroutable dest=exchange:NAME:KEY" when the exchange had no binding for
// the record.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
	id := flag.String("id", "", "the record's message-id (default: a new one)")
	key := flag.String("key", "", "the record's key (default: none)")
	value := flag.String("value", "hello", "the record's value")
	create := flag.Bool("create", true, "create the destination streams that do not exist")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: recipient-list [flags] STREAM|exchange:NAME:ROUTING-KEY...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	log.SetFlags(0)
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var dests []weir.Destination
	for _, arg := range flag.Args() {
		d, err := parseDestination(arg)
		if err != nil {
			log.Fatal(err)
		}
		dests = append(dests, d)
	}
	if *id == "" {
		*id = rand.Text()
	}

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	if *create {
		for _, d := range dests {
			if d.Stream == "" {
				continue
			}
			if err := example.Created(client.CreateStream(ctx, weir.StreamConfig{Name: d.Stream})); err != nil {
				log.Fatal(err)
			}
		}
	}

	rec := weir.Record{Value: []byte(*value), Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte(*id)}}}
	if *key != "" {
		rec.Key = []byte(*key)
	}
	fmt.Printf("message-id=%s\n", *id)
	// One call: it returns once every destination holds the record. If it
	// fails part way, running it again with the same message-id completes
	// the list without storing the record twice where it already is.
	results, err := client.PublishTo(ctx, dests, rec)
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range results {
		name := flag.Arg(i)
		switch {
		case r.Destination.Stream != "":
			res := r.Results[0]
			fmt.Printf("stored dest=%s partition=%d offset=%d duplicate=%t\n", name, res.Partition, res.Offset, res.Duplicate)
		case r.Unroutable:
			fmt.Printf("unroutable dest=%s\n", name)
		default:
			fmt.Printf("routed dest=%s streams=%s\n", name, strings.Join(r.Streams, ","))
		}
	}
}

// parseDestination reads STREAM or exchange:NAME:ROUTING-KEY (names cannot
// hold a colon; routing keys can).
func parseDestination(arg string) (weir.Destination, error) {
	rest, isExchange := strings.CutPrefix(arg, "exchange:")
	if !isExchange {
		return weir.ToStream(arg), nil
	}
	name, routingKey, ok := strings.Cut(rest, ":")
	if !ok || name == "" {
		return weir.Destination{}, fmt.Errorf("destination %q: want exchange:NAME:ROUTING-KEY", arg)
	}
	return weir.ToExchange(name, routingKey), nil
}
