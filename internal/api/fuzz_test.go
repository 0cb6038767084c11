package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// FuzzUnaryRequests sends arbitrary bytes as the protobuf body of every
// unary RPC of the native API (the first byte picks the method) to the real
// handler over a real broker. Whatever a client sends, the server answers
// (no panic) with a success or a Connect error of a known code — never
// "unknown" or "internal", which would mean input the API does not check.
func FuzzUnaryRequests(f *testing.F) {
	methods := unaryMethods()
	seed := func(name string, m proto.Message) {
		for i, md := range methods {
			if string(md.Name()) == name {
				b, err := proto.Marshal(m)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(append([]byte{byte(i)}, b...))
				return
			}
		}
		f.Fatalf("no unary method %s", name)
	}
	seed("CreateStream", &weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "s", Partitions: 2}})
	seed("Publish", &weirpb.PublishRequest{Stream: "s", Records: []*weirpb.Record{{Key: []byte("k"), Value: []byte("v"), Headers: []*weirpb.Header{{Key: "h", Value: []byte("x")}}}}})
	seed("CreateQueue", &weirpb.CreateQueueRequest{Name: "q"})
	seed("Fetch", &weirpb.FetchRequest{Stream: "s", Partition: 1, Offset: 0})
	seed("Ack", &weirpb.SettleRequest{SubscriptionId: "x", Records: []*weirpb.PartitionOffset{{Partition: 0, Offset: 1}}})
	seed("DeclareExchange", &weirpb.DeclareExchangeRequest{Name: "x", Type: "topic"})
	seed("Bind", &weirpb.BindRequest{Exchange: "x", Destination: "s", Key: "a.*"})
	seed("Commit", &weirpb.CommitRequest{Group: "g", Offsets: []*weirpb.OffsetCommit{{Stream: "s", Partition: 0, Offset: 1}}})

	b, err := broker.Open(broker.Config{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	svc := New(b, Options{})
	f.Cleanup(svc.Close)
	_, h := svc.Handler()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		md := methods[int(data[0])%len(methods)]
		checkUnaryAnswer(t, h, "/"+string(md.Parent().FullName())+"/"+string(md.Name()), data[1:])
	})
}

// checkUnaryAnswer posts body to h as the protobuf request of the unary
// call path: the answer must be a success or a Connect error of a known
// code, never a panic, "unknown" or "internal".
func checkUnaryAnswer(t *testing.T, h http.Handler, path string, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/proto")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code == http.StatusOK {
		return
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%s: status %d with a body that is not a Connect error: %q", path, rec.Code, rec.Body.Bytes())
	}
	switch e.Code {
	case "unknown", "internal", "":
		t.Fatalf("%s: %d %s: %s", path, rec.Code, e.Code, e.Message)
	}
}

// unaryMethods lists the unary methods of the Weir service in declaration
// order.
func unaryMethods() []protoreflect.MethodDescriptor {
	var out []protoreflect.MethodDescriptor
	ms := weirpb.File_weir_proto.Services().ByName("Weir").Methods()
	for j := range ms.Len() {
		if m := ms.Get(j); !m.IsStreamingClient() && !m.IsStreamingServer() {
			out = append(out, m)
		}
	}
	return out
}
