// Command consume-group consumes a Weir stream as a member of a consumer
// group and prints each record. Start several to share the partitions;
// stop one and the others take its partitions over from the committed
// offsets.
//
//	go run ./examples/consume-group -server localhost:8080 -stream orders -group billing
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	weir "github.com/weirmq/weir/client"
)

func main() {
	server := flag.String("server", envOr("WEIR_SERVER", "localhost:8080"), "Weir server address")
	stream := flag.String("stream", "orders", "stream to consume")
	group := flag.String("group", "example", "consumer group")
	from := flag.String("from", "earliest", "where a partition without a committed offset starts: earliest or latest")
	count := flag.Int("count", 0, "stop after this many records (0: run until interrupted)")
	commitInterval := flag.Duration("commit-interval", time.Second, "how often positions are committed")
	delay := flag.Duration("delay", 0, "time to spend on each record, to watch a slow consumer")
	flag.Parse()
	log.SetFlags(0)

	start := weir.Earliest()
	switch *from {
	case "earliest":
	case "latest":
		start = weir.Latest()
	default:
		log.Fatalf("-from %q: want earliest or latest", *from)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client, err := weir.Dial(ctx, *server)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// The handler runs on one goroutine per partition: records of a
	// partition, and so of a key, arrive in order. Returning nil marks the
	// record done; its position is committed automatically.
	var mu sync.Mutex
	handled := 0
	handler := func(ctx context.Context, m *weir.Message) error {
		time.Sleep(*delay)
		mu.Lock()
		defer mu.Unlock()
		if *count > 0 && handled >= *count {
			return ctx.Err() // stopping: leave the record to the next consumer
		}
		fmt.Printf("partition=%d offset=%d key=%s value=%s\n", m.Partition, m.Offset, m.Key, m.Value)
		handled++
		if *count > 0 && handled == *count {
			stop()
		}
		return nil
	}
	consumer, err := client.Consume(ctx, *stream, handler,
		weir.Group(*group), weir.Start(start), weir.AutoCommitInterval(*commitInterval),
		weir.OnAssignment(func(ev weir.AssignmentEvent) {
			for _, p := range ev.Revoked {
				fmt.Fprintf(os.Stderr, "revoked partition %d\n", p.Partition)
			}
			for _, p := range ev.Assigned {
				fmt.Fprintf(os.Stderr, "assigned partition %d from offset %d\n", p.Partition, p.Offset)
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	// Consume's context ends the consumer: on a signal, or after -count
	// records. It finishes the records under way and commits.
	if err := consumer.Wait(); err != nil {
		log.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
