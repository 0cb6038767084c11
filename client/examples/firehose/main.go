// Command firehose is an event firehose: a producer publishes a high rate
// of keyed events into a partitioned stream with the asynchronous, batching
// Producer, and consumer groups read it, each member a share of the
// partitions, every key's events in the order they were sent.
//
//	go run ./examples/firehose -server localhost:8080 -role produce -n 100000 -keys 100
//	go run ./examples/firehose -server localhost:8080 -role consume -group analytics -count 100000
//
// An event's key is "sensor-K" and its value the event's sequence number
// within its key (then "|" and padding up to -size bytes). The producer
// prints "produced records=N errors=E seconds=S rate=R/s"; the consumer
// prints "consumed records=N keys=K out-of-order=X seconds=S rate=R/s",
// and with -print first "event key=K seq=S partition=P offset=O" per
// event.
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

func main() {
	server := example.Server()
	role := flag.String("role", "produce", "produce or consume")
	stream := flag.String("stream", "firehose", "stream of events")
	partitions := flag.Int("partitions", 8, "produce: partitions of the stream, if it is created")
	n := flag.Int("n", 100000, "produce: number of events")
	keys := flag.Int("keys", 100, "produce: number of distinct keys")
	size := flag.Int("size", 0, "produce: pad each value to this many bytes")
	linger := flag.Duration("linger", 5*time.Millisecond, "produce: how long a batch waits for more events")
	group := flag.String("group", "analytics", "consume: consumer group")
	count := flag.Int("count", 0, "consume: stop after this many events (0: run until interrupted)")
	printEach := flag.Bool("print", false, "consume: print every event")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	if err := example.Created(client.CreateStream(ctx, weir.StreamConfig{Name: *stream, Partitions: int32(*partitions)})); err != nil {
		log.Fatal(err)
	}

	switch *role {
	case "produce":
		produce(ctx, client, *stream, *n, max(*keys, 1), *size, *linger)
	case "consume":
		consume(ctx, stop, client, *stream, *group, *count, *printEach)
	default:
		log.Fatalf("-role %q: want produce or consume", *role)
	}
}

// produce sends n events and waits until each is stored. Send returns at
// once; the producer gathers events into batches per partition and keeps
// several partitions' publishes under way. A partition has one batch in
// flight at a time, so a key's events are stored in the order sent.
func produce(ctx context.Context, client *weir.Client, stream string, n, keys, size int, linger time.Duration) {
	producer := client.NewProducer(stream, weir.Linger(linger))
	var errs int // callbacks run one at a time, in the order of Send
	var firstErr error
	seq := make([]int, keys)
	start := time.Now()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	for i := range n {
		k := i % keys
		value := strconv.Itoa(seq[k])
		seq[k]++
		if pad := size - len(value) - 1; pad > 0 {
			value += "|" + strings.Repeat("x", pad)
		}
		producer.Send(ctx, weir.Record{Key: []byte("sensor-" + strconv.Itoa(k)), Value: []byte(value)}, func(_ weir.PublishResult, err error) {
			if err != nil {
				if errs == 0 {
					firstErr = err
				}
				errs++
			}
		})
		select {
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "sent %d events\n", i+1)
		default:
		}
	}
	if err := producer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	elapsed := time.Since(start)
	fmt.Printf("produced records=%d errors=%d seconds=%.3f rate=%.0f/s\n", n, errs, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	if errs > 0 {
		log.Fatalf("%d events failed; the first: %v", errs, firstErr)
	}
}

// consume reads the stream as a member of a consumer group. The handler
// runs on one goroutine per partition, so a key's events come in order;
// it checks that they do.
func consume(ctx context.Context, stop context.CancelFunc, client *weir.Client, stream, group string, count int, printEach bool) {
	var mu sync.Mutex
	next := make(map[string]int) // the sequence number expected next, per key
	handled, outOfOrder := 0, 0
	var first, last time.Time
	handler := func(ctx context.Context, m *weir.Message) error {
		seqText, _, _ := strings.Cut(string(m.Value), "|")
		seq, err := strconv.Atoi(seqText)
		if err != nil {
			fmt.Fprintf(os.Stderr, "skipping %s/%d@%d: not an event: %q\n", m.Stream, m.Partition, m.Offset, m.Value)
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if count > 0 && handled >= count {
			return ctx.Err() // stopping: the group's next member gets it
		}
		if handled == 0 {
			first = time.Now()
		}
		key := string(m.Key)
		// A consumer that joins a group with committed offsets starts in
		// the middle of each key: what it sees first sets the pace.
		if want, seen := next[key]; seen && seq != want {
			outOfOrder++
			fmt.Fprintf(os.Stderr, "key %s: event %d where %d was due\n", key, seq, want)
		}
		next[key] = seq + 1
		handled++
		last = time.Now()
		if printEach {
			fmt.Printf("event key=%s seq=%d partition=%d offset=%d\n", key, seq, m.Partition, m.Offset)
		}
		if count > 0 && handled == count {
			stop()
		}
		return nil
	}
	consumer, err := client.Consume(ctx, stream, handler, weir.Group(group), weir.Start(weir.Earliest()))
	if err != nil {
		log.Fatal(err)
	}
	// A signal (or -count) ends the consumer; it commits as it stops.
	err = consumer.Wait()
	mu.Lock()
	defer mu.Unlock()
	elapsed := last.Sub(first)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(handled) / elapsed.Seconds()
	}
	fmt.Printf("consumed records=%d keys=%d out-of-order=%d seconds=%.3f rate=%.0f/s\n", handled, len(next), outOfOrder, elapsed.Seconds(), rate)
	if err != nil {
		log.Fatal(err)
	}
}
