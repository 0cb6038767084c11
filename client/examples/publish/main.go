// Command publish publishes keyed records to a Weir stream, creating the
// stream if it does not exist, and prints where each record was stored.
//
//	go run ./examples/publish -server localhost:8080 -stream orders -n 10
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
	stream := flag.String("stream", "orders", "stream to publish to")
	partitions := flag.Int("partitions", 4, "partitions of the stream, if it is created")
	n := flag.Int("n", 10, "number of records")
	keys := flag.Int("keys", 3, "number of distinct keys")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	if err := example.Created(client.CreateStream(ctx, weir.StreamConfig{Name: *stream, Partitions: int32(*partitions)})); err != nil {
		log.Fatal(err)
	}

	// The producer batches records and reports each one's result, in the
	// order they were sent. Records with the same key go to the same
	// partition, in order.
	producer := client.NewProducer(*stream)
	failed := false
	for i := range *n {
		key := fmt.Sprintf("customer-%d", i%max(*keys, 1))
		value := fmt.Sprintf("order %d", i)
		producer.Send(ctx, weir.Record{Key: []byte(key), Value: []byte(value)}, func(res weir.PublishResult, err error) {
			if err != nil {
				log.Printf("%s: %v", value, err)
				failed = true
				return
			}
			fmt.Printf("published key=%s value=%q partition=%d offset=%d\n", key, value, res.Partition, res.Offset)
		})
	}
	if err := producer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	if failed {
		os.Exit(1)
	}
}
