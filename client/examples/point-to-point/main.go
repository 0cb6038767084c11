// Command point-to-point sends tasks to a Weir queue and receives them as
// one of the queue's competing receivers: each task goes to one receiver,
// which acknowledges it once done, so that with nothing failing each task
// is processed exactly once however many receivers run. Start several
// receivers, then a sender:
//
//	go run ./examples/point-to-point -server localhost:8080 -role receive -name r1
//	go run ./examples/point-to-point -server localhost:8080 -role receive -name r2
//	go run ./examples/point-to-point -server localhost:8080 -role send -n 20
//
// The sender prints "sent task=N partition=P offset=O" per task; a receiver
// prints "ready receiver=NAME" once it is subscribed, then
// "received receiver=NAME task=N delivery=D" per task.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
	role := flag.String("role", "receive", "send or receive")
	queue := flag.String("queue", "tasks", "queue to send to and receive from")
	partitions := flag.Int("partitions", 2, "partitions of the queue, if it is created")
	n := flag.Int("n", 10, "send: number of tasks")
	name := flag.String("name", "", "receive: this receiver's name in what it prints (default: its process id)")
	prefetch := flag.Int("prefetch", 1, "receive: tasks held at once")
	work := flag.Duration("work", 0, "receive: time each task takes")
	count := flag.Int("count", 0, "receive: stop after this many tasks (0: run until interrupted)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	// Both roles create the queue, so that either may start first: tasks
	// sent before any receiver runs wait in the queue.
	if err := example.Created(client.CreateQueue(ctx, weir.QueueConfig{Name: *queue, Partitions: int32(*partitions)})); err != nil {
		log.Fatal(err)
	}

	switch *role {
	case "send":
		send(ctx, client, *queue, *n)
	case "receive":
		if *name == "" {
			*name = strconv.Itoa(os.Getpid())
		}
		receive(ctx, stop, client, *queue, *name, *prefetch, *work, *count)
	default:
		log.Fatalf("-role %q: want send or receive", *role)
	}
}

// send publishes n tasks. Each carries a message-id, so that publishing
// one again (after a timeout, say) does not queue it twice.
func send(ctx context.Context, client *weir.Client, queue string, n int) {
	for i := range n {
		task := strconv.Itoa(i)
		res, err := client.Publish(ctx, queue, weir.Record{
			Value:   []byte(task),
			Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte("task-" + task)}},
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("sent task=%s partition=%d offset=%d\n", task, res[0].Partition, res[0].Offset)
	}
}

// receive is one of the queue's competing consumers: the handler's nil
// return acknowledges the task; an error would have it delivered again.
func receive(ctx context.Context, stop context.CancelFunc, client *weir.Client, queue, name string, prefetch int, work time.Duration, count int) {
	limit := example.NewLimit(count, stop)
	handler := func(ctx context.Context, m *weir.Message) error {
		if err := example.Sleep(ctx, work); err != nil {
			return err // stopping: the task goes to another receiver
		}
		// Past -count it returns an error too: the task goes to another
		// receiver.
		return limit.Handle(ctx, func() {
			fmt.Printf("received receiver=%s task=%s delivery=%d\n", name, m.Value, m.DeliveryCount)
		})
	}
	consumer, err := client.Consume(ctx, queue, handler, weir.Shared(""), weir.Prefetch(prefetch))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready receiver=%s\n", name)
	// A signal (or -count) ends the consumer: the tasks under way finish
	// and are acknowledged.
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}
