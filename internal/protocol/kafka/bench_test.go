package kafka_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirmq/weir/internal/server"
)

// The benchmarks run franz-go against an in-process node on loopback: the
// issue's setup (acks=all, idempotent, 16 partitions), one producer client.
// go test -run XXX -bench . -benchtime 2000000x ./internal/protocol/kafka/

const benchPartitions = 16

func benchNode(b *testing.B, fsync server.FSyncMode) *weir {
	w := startWeir(b, func(c *server.Config) { c.FSync = fsync })
	if _, err := w.admin(b).CreateTopic(testContext(b), benchPartitions, 1, nil, "bench"); err != nil {
		b.Fatal(err)
	}
	return w
}

// produceN produces n records of size bytes and waits for every ack.
func produceN(b *testing.B, cl *kgo.Client, n, size int) {
	value := make([]byte, size)
	var wg sync.WaitGroup
	var failed atomic.Int64
	wg.Add(n)
	ctx := testContext(b)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
		wg.Done()
	}
	for range n {
		cl.Produce(ctx, &kgo.Record{Topic: "bench", Value: value}, done)
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d produce errors", f)
	}
}

func benchmarkProduce(b *testing.B, fsync server.FSyncMode, size int) {
	w := benchNode(b, fsync)
	cl := w.client(b, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(1<<20))
	b.SetBytes(int64(size))
	b.ResetTimer()
	produceN(b, cl, b.N, size)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkProduce100BIntervalFsync(b *testing.B) { benchmarkProduce(b, server.FSyncInterval, 100) }
func BenchmarkProduce100BAlwaysFsync(b *testing.B)   { benchmarkProduce(b, server.FSyncAlways, 100) }
func BenchmarkProduce1KiBIntervalFsync(b *testing.B) { benchmarkProduce(b, server.FSyncInterval, 1024) }

// BenchmarkFetch100B consumes b.N records of 100 bytes produced beforehand.
func BenchmarkFetch100B(b *testing.B) {
	w := benchNode(b, server.FSyncInterval)
	prod := w.client(b, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.MaxBufferedRecords(1<<20))
	produceN(b, prod, b.N, 100)
	cl := w.client(b, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	ctx := testContext(b)
	b.SetBytes(100)
	b.ResetTimer()
	got := 0
	for got < b.N {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("consumed %d of %d", got, b.N)
		}
		got += fs.NumRecords()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
