// Command replay prints the records of a Weir stream from a point in time
// on, in every partition, and exits once no record came for a while.
//
//	go run ./examples/replay -server localhost:8080 -stream orders -since 10m
//	go run ./examples/replay -stream orders -since 2026-01-02T15:04:05Z
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/client/examples/internal/example"
)

func main() {
	server := example.Server()
	stream := flag.String("stream", "orders", "stream to replay")
	since := flag.String("since", "1h", "where to start: an RFC 3339 time, or a duration before now")
	idle := flag.Duration("idle", time.Second, "exit when no record came for this long")
	flag.Parse()
	log.SetFlags(0)

	from, err := parseSince(*since, time.Now())
	if err != nil {
		log.Fatalf("-since: %v", err)
	}
	ctx, stop := example.Context()
	defer stop()
	client := example.Dial(ctx, *server)
	defer client.Close()

	// A consumer without a group reads from positions: here the first
	// record at or after the time, in every partition. It commits nothing.
	var mu sync.Mutex
	last := time.Now()
	handler := func(ctx context.Context, m *weir.Message) error {
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		fmt.Printf("partition=%d offset=%d time=%s key=%s value=%s\n",
			m.Partition, m.Offset, m.Timestamp.UTC().Format(time.RFC3339Nano), m.Key, m.Value)
		return nil
	}
	consumer, err := client.Consume(ctx, *stream, handler, weir.FromPositions(nil), weir.Start(weir.AtTime(from)))
	if err != nil {
		log.Fatal(err)
	}
	ticker := time.NewTicker(*idle / 10)
	defer ticker.Stop()
	for {
		select {
		case <-consumer.Done():
			if err := consumer.Wait(); err != nil {
				log.Fatal(err)
			}
			return
		case <-ticker.C:
		}
		mu.Lock()
		quiet := time.Since(last) >= *idle
		mu.Unlock()
		if quiet {
			if err := consumer.Close(ctx); err != nil {
				log.Fatal(err)
			}
			return
		}
	}
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return now.Add(-d), nil
}
