package api

import (
	"testing"

	"google.golang.org/protobuf/proto"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// FuzzEventsRequests sends arbitrary bytes as the protobuf body of the
// Events service's unary calls (the first byte picks the method) to the
// real handler over a real broker: the answer is a success or a Connect
// error of a known code, never a panic, "unknown" or "internal". Appends
// that succeed leave events that later inputs read, retry and conflict with.
func FuzzEventsRequests(f *testing.F) {
	methods := weirpb.File_events_proto.Services().ByName("Events").Methods()
	var unary []string
	for i := range methods.Len() {
		if m := methods.Get(i); !m.IsStreamingServer() && !m.IsStreamingClient() {
			unary = append(unary, "/"+string(m.Parent().FullName())+"/"+string(m.Name()))
		}
	}
	seed := func(method int, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(method)}, b...))
	}
	seed(0, &weirpb.AppendEventsRequest{Aggregate: "order-1", Expected: &weirpb.AppendEventsRequest_NoStream{NoStream: true},
		Events: []*weirpb.ProposedEvent{{Id: "e1", Type: "T", Data: []byte("d"), CorrelationId: "c", CausationId: "x"}}})
	seed(0, &weirpb.AppendEventsRequest{Aggregate: "order-1", Expected: &weirpb.AppendEventsRequest_ExpectedVersion{ExpectedVersion: 1},
		Events: []*weirpb.ProposedEvent{{Id: "e2", Type: "T"}, {Id: "e3", Type: "U", Metadata: []byte("m")}}})
	seed(1, &weirpb.ReadAggregateRequest{Aggregate: "order-1", FromVersion: 2, MaxEvents: 1})
	seed(2, &weirpb.ReadAllRequest{FromPosition: 1, MaxEvents: 2, Category: "order"})

	b, err := broker.Open(broker.Config{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	svc := New(b, Options{})
	f.Cleanup(svc.Close)
	_, h := svc.EventsHandler()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		checkUnaryAnswer(t, h, unary[int(data[0])%len(unary)], data[1:])
	})
}
