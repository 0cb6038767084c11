// Command worker is an asynchronous-command worker: one of the competing
// consumers of a Weir queue. It runs each command it gets, up to -prefetch
// at once; a command that fails is retried after a backoff, and after
// -max-deliveries attempts it goes to the queue's dead-letter stream, with
// headers saying why. A malformed command is dead-lettered at once. Start
// several workers to share the work; kill one and its unfinished commands go
// to the others.
//
//	go run ./examples/worker -server localhost:8080 -queue commands -create
//
// A command is a record whose value is "NAME" or "NAME:ARG"; the worker
// knows "sleep:DURATION", "echo:TEXT" and "fail:TEXT" (which always fails).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
	queue := flag.String("queue", "commands", "queue to take commands from")
	create := flag.Bool("create", false, "create the queue if it does not exist")
	maxDeliveries := flag.Int("max-deliveries", 3, "with -create: attempts before a command is dead-lettered")
	prefetch := flag.Int("prefetch", 10, "commands run at once")
	work := flag.Duration("work", 0, "time every command takes besides its own, to watch a slow worker")
	idle := flag.Duration("idle", 0, "exit after this long without a command (0: run until interrupted)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	if *create {
		err := example.Created(client.CreateQueue(ctx, weir.QueueConfig{
			Name: *queue,
			Subscription: weir.SubscriptionConfig{
				MaxDeliveries: int32(*maxDeliveries),
				AckTimeout:    30 * time.Second,
				Backoff:       weir.Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2},
			},
		}))
		if err != nil {
			log.Fatal(err)
		}
	}

	var mu sync.Mutex // one line at a time on stdout
	lastWork := time.Now()
	handler := func(ctx context.Context, m *weir.Message) error {
		mu.Lock()
		lastWork = time.Now()
		mu.Unlock()
		name, arg, _ := strings.Cut(string(m.Value), ":")
		var err error
		switch name {
		case "sleep":
			var d time.Duration
			if d, err = time.ParseDuration(arg); err != nil {
				// It will never work: dead-letter it now rather than retry.
				return m.Reject(ctx, "malformed command: "+err.Error())
			}
			// A command that may outlast the ack timeout asks for more time.
			if d > 10*time.Second {
				if err := m.Extend(ctx, d+10*time.Second); err != nil {
					return err
				}
			}
			err = example.Sleep(ctx, d)
		case "echo":
		case "fail":
			err = fmt.Errorf("command failed: %s", arg)
		default:
			return m.Reject(ctx, fmt.Sprintf("unknown command %q", name))
		}
		if err == nil {
			err = example.Sleep(ctx, *work)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			// Returning the error nacks the command: it comes back after
			// the queue's backoff, until it runs out of attempts.
			fmt.Fprintf(os.Stderr, "failed partition=%d offset=%d delivery=%d command=%s: %v\n", m.Partition, m.Offset, m.DeliveryCount, m.Value, err)
			return err
		}
		// Returning nil acknowledges the command.
		fmt.Printf("done partition=%d offset=%d delivery=%d command=%s\n", m.Partition, m.Offset, m.DeliveryCount, m.Value)
		return nil
	}
	consumer, err := client.Consume(ctx, *queue, handler, weir.Shared(""), weir.Prefetch(*prefetch))
	if err != nil {
		log.Fatal(err)
	}
	if *idle > 0 {
		go func() {
			for range time.Tick(*idle / 10) {
				mu.Lock()
				quiet := time.Since(lastWork)
				mu.Unlock()
				if quiet >= *idle {
					stop()
					return
				}
			}
		}()
	}
	// Consume's context ends the consumer: on a signal, or when idle. It
	// finishes the commands under way and sends their acks.
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}
