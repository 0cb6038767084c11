// Package example holds the plumbing the Weir example programs share, so
// that each program's main.go is left with what its pattern is about:
// the server flag, the signal context, dialing, creating what already may
// exist, waiting, and the -count limit of a consumer.
//
// A program uses it like this:
//
//	server := example.Server()
//	flag.Parse()
//	log.SetFlags(0)
//
//	ctx, stop := example.Context()
//	defer stop()
//	client := example.Dial(ctx, *server)
//	defer client.Close()
//
//	if err := example.Created(client.CreateStream(ctx, weir.StreamConfig{Name: "orders"})); err != nil {
//		log.Fatal(err)
//	}
package example

import (
	"context"
	"errors"
	"flag"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	weir "github.com/weirmq/weir/client"
)

// Server registers the -server flag, the address of the Weir server, and
// returns where flag.Parse stores it. Its default is $WEIR_SERVER if set,
// else localhost:8080.
func Server() *string {
	addr, ok := os.LookupEnv("WEIR_SERVER")
	if !ok {
		addr = "localhost:8080"
	}
	return flag.String("server", addr, "Weir server address")
}

// Context returns a context that ends on SIGINT or SIGTERM, and the
// function that ends it sooner; a program defers that function. A consumer
// running under the context finishes its messages under way and stops.
func Context() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Dial connects to the Weir server at addr, or exits saying why it could
// not. The caller closes the client.
func Dial(ctx context.Context, addr string) *weir.Client {
	client, err := weir.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// Created takes what a create call (Client.CreateStream, CreateQueue, ...)
// returns and gives its error, except that a thing that already exists
// counts as created: nil. The examples create what they use so that any of
// their programs may start first; whoever comes later finds it there, and
// its own configuration is not applied.
func Created[T any](_ T, err error) error {
	if errors.Is(err, weir.ErrAlreadyExists) {
		return nil
	}
	return err
}

// Sleep waits for d, or until ctx ends: then it returns ctx.Err(). A d of
// zero or less returns nil at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Limit ends a consumer after a number of messages: the examples' -count
// flag. Its handlers run one at a time, so that the lines they print do
// not interleave.
type Limit struct {
	mu      sync.Mutex
	handled int
	max     int
	stop    context.CancelFunc
}

// NewLimit returns a Limit that calls stop, which ends the consumer's
// context, once max messages were handled. A max of 0 or less is no limit.
func NewLimit(max int, stop context.CancelFunc) *Limit {
	return &Limit{max: max, stop: stop}
}

// Handle runs handle for a message and counts it, unless the limit was
// reached: then the consumer is stopping, and Handle runs nothing and
// returns ctx.Err(). A message handler that returns that error leaves the
// message unsettled, for another consumer (or a later run) to get.
func (l *Limit) Handle(ctx context.Context, handle func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.handled >= l.max {
		return ctx.Err()
	}
	handle()
	l.handled++
	if l.max > 0 && l.handled == l.max {
		l.stop()
	}
	return nil
}
