package mqtt

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// BenchmarkPublishQoS1 publishes QoS 1 messages of 100 bytes from clients
// in parallel (each keeping up to 1,000 unacknowledged), to one subscribed
// session queue.
func BenchmarkPublishQoS1(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprint("clients=", clients), func(b *testing.B) {
			n := startNode(b)
			t := b
			sub := dialRaw(t, n.addr, Version311)
			sub.connect(&Connect{ClientID: "sink", KeepAlive: 60})
			sub.subscribe(1, Subscription{Filter: "bench/#", QoS: 1})
			payload := make([]byte, 100)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/clients + 1
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := dialRaw(t, n.addr, Version311)
					c.connect(&Connect{ClientID: fmt.Sprint("pub-", i), CleanStart: true, KeepAlive: 60})
					// At most 1,000 unacknowledged, so packet ids stay unique.
					inFlight := make(chan struct{}, 1000)
					acked := make(chan struct{})
					go func() {
						defer close(acked)
						for range per {
							if _, err := c.tryRecv(30 * time.Second); err != nil {
								b.Error(err)
								return
							}
							<-inFlight
						}
					}()
					buf := make([]byte, 0, 256)
					for j := range per {
						inFlight <- struct{}{}
						buf = AppendPacket(buf[:0], &Publish{Topic: "bench/x", QoS: 1, PacketID: uint16(j%65535 + 1), Payload: payload}, Version311)
						if _, err := c.nc.Write(buf); err != nil {
							b.Error(err)
							return
						}
					}
					<-acked
				}()
			}
			wg.Wait()
		})
	}
}

// BenchmarkDeliverQoS1 delivers records of a session queue to a QoS 1
// subscriber that acknowledges each.
func BenchmarkDeliverQoS1(b *testing.B) {
	n := startNode(b)
	t := b
	sub := dialRaw(t, n.addr, Version311)
	sub.connect(&Connect{ClientID: "sink", KeepAlive: 60})
	sub.subscribe(1, Subscription{Filter: "bench/#", QoS: 1})
	sub.send(&Disconnect{})
	sub.expectClosed(5 * time.Second)
	recs := make([]broker.Record, 0, 1000)
	for i := 0; i < b.N; i += len(recs) {
		recs = recs[:0]
		for j := 0; j < 1000 && i+j < b.N; j++ {
			recs = append(recs, toRecord(&Publish{Topic: "bench/x", QoS: 1, Payload: make([]byte, 100)}, "pub"))
		}
		if _, err := n.b.PublishExchange(b.Context(), Exchange, "bench.x", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(100)
	b.ResetTimer()
	sub = dialRaw(t, n.addr, Version311)
	sub.connect(&Connect{ClientID: "sink", KeepAlive: 60})
	for range b.N {
		p, err := sub.tryRecv(30 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		sub.send(&Ack{Type: typePuback, PacketID: p.(*Publish).PacketID})
	}
}
