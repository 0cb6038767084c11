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
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
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

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	// The handler runs on one goroutine per partition: records of a
	// partition, and so of a key, arrive in order. Returning nil marks the
	// record done; its position is committed automatically.
	limit := example.NewLimit(*count, stop)
	handler := func(ctx context.Context, m *weir.Message) error {
		time.Sleep(*delay)
		// Past -count it returns an error: stopping, the record is left to
		// the next consumer.
		return limit.Handle(ctx, func() {
			fmt.Printf("partition=%d offset=%d key=%s value=%s\n", m.Partition, m.Offset, m.Key, m.Value)
		})
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
