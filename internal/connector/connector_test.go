package connector

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

func TestSuperviseBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var delays []time.Duration
		var starts []time.Time
		run := func(ctx context.Context) error {
			starts = append(starts, time.Now())
			if len(starts) <= 4 {
				return errors.New("database down")
			}
			<-ctx.Done()
			return nil
		}
		done := make(chan struct{})
		go func() {
			Supervise(ctx, slog.New(slog.DiscardHandler), Backoff{Min: time.Second, Max: 3 * time.Second, Reset: time.Hour}, run,
				func(err error, retryIn time.Duration) { delays = append(delays, retryIn) })
			close(done)
		}()
		time.Sleep(time.Minute)
		cancel()
		<-done
		if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}; !slices.Equal(delays, want) {
			t.Fatalf("delays = %v, want %v", delays, want)
		}
		if len(starts) != 5 || starts[4].Sub(starts[0]) != 9*time.Second {
			t.Fatalf("%d runs, the last %v after the first", len(starts), starts[len(starts)-1].Sub(starts[0]))
		}
	})
}

func TestBrokerSink(t *testing.T) {
	b, err := broker.Open(broker.Config{DataDir: t.TempDir(), JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	sink := NewBrokerSink(b, StreamDefaults{Partitions: 2, Compacted: true, DedupWindow: -1})
	if err := sink.EnsureStreams(ctx, []string{"cdc.public.a"}); err != nil {
		t.Fatal(err)
	}
	recs := []Record{
		{Stream: "cdc.public.a", Key: []byte("k1"), Value: []byte("1")},
		{Stream: "cdc.public.b", Key: []byte("k2"), Value: []byte("2")},
		{Stream: "cdc.public.a", Key: []byte("k1")}, // tombstone
	}
	if err := sink.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"cdc.public.a": 2, "cdc.public.b": 1} {
		info, err := b.DescribeStream(name)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Config.Compacted || len(info.Partitions) != 2 {
			t.Errorf("%s: %+v", name, info.Config)
		}
		var n int64
		for _, p := range info.Partitions {
			n += p.EndOffset - p.StartOffset
		}
		if n != int64(want) {
			t.Errorf("%s holds %d records, want %d", name, n, want)
		}
	}
	// No dedup window: a record written again is stored again.
	again := []Record{{Stream: "cdc.public.a", Key: []byte("k9"), Value: []byte("x"), Headers: []broker.Header{{Key: broker.HeaderMessageID, Value: []byte("id-1")}}}}
	for range 2 {
		if err := sink.Write(ctx, again); err != nil {
			t.Fatal(err)
		}
	}
	res, err := b.Publish(ctx, "cdc.public.a", []broker.Record{{Key: []byte("k9"), Value: []byte("x"), Headers: again[0].Headers}})
	if err != nil || res[0].Duplicate {
		t.Fatalf("publish with a seen message-id: %+v, %v", res, err)
	}
	// A stream deleted under the sink is created again.
	if err := b.DeleteStream(ctx, "cdc.public.b"); err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(ctx, recs[1:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DescribeStream("cdc.public.b"); err != nil {
		t.Fatal(err)
	}
	// A record over the broker's limit is an error, not skipped.
	if err := sink.Write(ctx, []Record{{Stream: "cdc.public.a", Value: make([]byte, 2<<20)}}); !errors.Is(err, broker.ErrRecordTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
}
