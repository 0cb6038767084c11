// Command request-reply sends requests to a Weir queue and waits for each
// reply, or serves the queue's requests as one of its competing responders.
// The requester's Client.Request adds a reply-to header naming its
// temporary inbox and a fresh correlation-id; the responder's Client.Respond
// answers each request into that inbox with that correlation id.
//
//	go run ./examples/request-reply -server localhost:8080 -role respond -name r1
//	go run ./examples/request-reply -server localhost:8080 -role request -n 3 -timeout 2s
//
// A responder answers a request with its value upper-cased and prints
// "ready responder=NAME" once subscribed, then
// "served responder=NAME request=V" per request. The requester prints
// "reply request=V reply=R responder=NAME correlation-id=C" per answered
// request and "timeout request=V" per unanswered one, and exits with
// status 1 if any request went unanswered.
package main

import (
	"context"
	"errors"
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

// headerResponder names the responder in a reply.
const headerResponder = "responder"

func main() {
	server := example.Server()
	role := flag.String("role", "request", "request or respond")
	queue := flag.String("queue", "rpc", "queue of requests")
	n := flag.Int("n", 3, "request: number of requests")
	concurrency := flag.Int("concurrency", 1, "request: requests waiting for their replies at once")
	timeout := flag.Duration("timeout", 5*time.Second, "request: how long each request waits for its reply")
	name := flag.String("name", "", "respond: this responder's name (default: its process id)")
	delay := flag.Duration("delay", 0, "respond: time each answer takes")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	// Both roles create the queue: requests sent before a responder runs
	// wait in it.
	if err := example.Created(client.CreateQueue(ctx, weir.QueueConfig{Name: *queue})); err != nil {
		log.Fatal(err)
	}

	switch *role {
	case "request":
		if !request(ctx, client, *queue, *n, max(*concurrency, 1), *timeout) {
			os.Exit(1)
		}
	case "respond":
		if *name == "" {
			*name = strconv.Itoa(os.Getpid())
		}
		respond(ctx, client, *queue, *name, *delay)
	default:
		log.Fatalf("-role %q: want request or respond", *role)
	}
}

// request sends n requests, concurrency at a time, and reports whether
// every one was answered.
func request(ctx context.Context, client *weir.Client, queue string, n, concurrency int, timeout time.Duration) bool {
	var mu sync.Mutex // one line at a time on stdout
	answered := 0
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			value := fmt.Sprintf("hello-%d", i)
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			// The request expires with its wait: the queue drops it if no
			// responder took it by then, as nobody would read the answer.
			reply, err := client.Request(rctx, weir.ToStream(queue), weir.Record{
				Value:   []byte(value),
				Headers: []weir.Header{weir.ExpiresAfter(timeout)},
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				fmt.Printf("timeout request=%s after=%v\n", value, timeout)
			case err != nil:
				log.Printf("request %s: %v", value, err)
			default:
				answered++
				responder, _ := reply.Header(headerResponder)
				corr, _ := reply.Header(weir.HeaderCorrelationID)
				fmt.Printf("reply request=%s reply=%s responder=%s correlation-id=%s\n", value, reply.Value, responder, corr)
			}
		})
	}
	wg.Wait()
	return answered == n
}

// respond serves requests until interrupted: Respond consumes the queue as
// one of its competing consumers and sends each answer to the request's
// reply-to with its correlation-id.
func respond(ctx context.Context, client *weir.Client, queue, name string, delay time.Duration) {
	var mu sync.Mutex
	consumer, err := client.Respond(ctx, queue, func(ctx context.Context, req *weir.Message) (weir.Record, error) {
		if err := example.Sleep(ctx, delay); err != nil {
			return weir.Record{}, err
		}
		mu.Lock()
		fmt.Printf("served responder=%s request=%s\n", name, req.Value)
		mu.Unlock()
		return weir.Record{
			Value:   []byte(strings.ToUpper(string(req.Value))),
			Headers: []weir.Header{{Key: headerResponder, Value: []byte(name)}},
		}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready responder=%s\n", name)
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}
