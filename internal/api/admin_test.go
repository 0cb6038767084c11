package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
)

func TestStreamAdmin(t *testing.T) {
	n := startNode(t, "")
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			ctx := t.Context()
			name := "orders-" + strings.ReplaceAll(proto, "+", "-")
			created, err := c.CreateStream(ctx, connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{
				Name: name, Partitions: 3, RetentionAge: durationpb.New(time.Hour),
			}}))
			if err != nil {
				t.Fatalf("CreateStream: %v", err)
			}
			info := created.Msg
			if info.GetConfig().GetName() != name || len(info.GetPartitions()) != 3 || len(info.GetId()) != 32 ||
				info.GetConfig().GetRetentionAge().AsDuration() != time.Hour || info.GetConfig().GetDedupWindow().AsDuration() != 2*time.Minute {
				t.Errorf("CreateStream = %v", info)
			}

			_, err = c.CreateStream(ctx, connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: name}}))
			wantCode(t, "duplicate CreateStream", err, connect.CodeAlreadyExists)
			if err != nil && !strings.Contains(err.Error(), name) {
				t.Errorf("duplicate CreateStream error %q does not name the stream", err)
			}

			described, err := c.DescribeStream(ctx, connect.NewRequest(&weirpb.DescribeStreamRequest{Name: name}))
			if err != nil || described.Msg.GetId() != info.GetId() {
				t.Errorf("DescribeStream = %v, %v; want id %s", described, err, info.GetId())
			}
			grown, err := c.AddPartitions(ctx, connect.NewRequest(&weirpb.AddPartitionsRequest{Name: name, Total: 5}))
			if err != nil || len(grown.Msg.GetPartitions()) != 5 {
				t.Errorf("AddPartitions to 5 = %v, %v", grown, err)
			}
			_, err = c.AddPartitions(ctx, connect.NewRequest(&weirpb.AddPartitionsRequest{Name: name, Total: 2}))
			wantCode(t, "AddPartitions shrinking", err, connect.CodeInvalidArgument)

			list, err := c.ListStreams(ctx, connect.NewRequest(&weirpb.ListStreamsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range list.Msg.GetStreams() {
				found = found || s.GetConfig().GetName() == name
			}
			if !found {
				t.Errorf("ListStreams does not list %s", name)
			}

			if _, err := c.DeleteStream(ctx, connect.NewRequest(&weirpb.DeleteStreamRequest{Name: name})); err != nil {
				t.Errorf("DeleteStream: %v", err)
			}
			_, err = c.DescribeStream(ctx, connect.NewRequest(&weirpb.DescribeStreamRequest{Name: name}))
			wantCode(t, "DescribeStream after delete", err, connect.CodeNotFound)
		})
	}
}

func TestErrorCodes(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "orders", 2)
	big := bytes.Repeat([]byte("x"), 1<<20+1) // over the default max-record-bytes
	tests := []struct {
		name string
		call func(c weirpbconnect.WeirClient) error
		code connect.Code
		msg  string // a substring of the message
	}{
		{"describe unknown stream", func(c weirpbconnect.WeirClient) error {
			_, err := c.DescribeStream(t.Context(), connect.NewRequest(&weirpb.DescribeStreamRequest{Name: "nope"}))
			return err
		}, connect.CodeNotFound, `"nope"`},
		{"delete unknown stream", func(c weirpbconnect.WeirClient) error {
			_, err := c.DeleteStream(t.Context(), connect.NewRequest(&weirpb.DeleteStreamRequest{Name: "nope"}))
			return err
		}, connect.CodeNotFound, "stream not found"},
		{"invalid stream name", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateStream(t.Context(), connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "bad name!"}}))
			return err
		}, connect.CodeInvalidArgument, "letters, digits"},
		{"create without config", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateStream(t.Context(), connect.NewRequest(&weirpb.CreateStreamRequest{}))
			return err
		}, connect.CodeInvalidArgument, "config is required"},
		{"too many partitions", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateStream(t.Context(), connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "x", Partitions: 100000}}))
			return err
		}, connect.CodeInvalidArgument, "partitions must be"},
		{"publish to unknown stream", func(c weirpbconnect.WeirClient) error {
			_, err := c.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "nope", Records: []*weirpb.Record{{Value: []byte("v")}}}))
			return err
		}, connect.CodeNotFound, "nope"},
		{"publish without stream", func(c weirpbconnect.WeirClient) error {
			_, err := c.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Records: []*weirpb.Record{{Value: []byte("v")}}}))
			return err
		}, connect.CodeInvalidArgument, "stream is required"},
		{"publish nothing", func(c weirpbconnect.WeirClient) error {
			_, err := c.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "orders"}))
			return err
		}, connect.CodeInvalidArgument, "nothing to publish"},
		{"record over the size limit", func(c weirpbconnect.WeirClient) error {
			_, err := c.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Records: []*weirpb.Record{{Value: big}}}))
			return err
		}, connect.CodeResourceExhausted, "the limit is 1048576"},
		{"publish to a missing partition", func(c weirpbconnect.WeirClient) error {
			p := int32(7)
			_, err := c.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Partition: &p, Records: []*weirpb.Record{{Value: []byte("v")}}}))
			return err
		}, connect.CodeNotFound, "partitions 0 to 1"},
		{"fetch beyond the end", func(c weirpbconnect.WeirClient) error {
			_, err := c.Fetch(t.Context(), connect.NewRequest(&weirpb.FetchRequest{Stream: "orders", Offset: 100}))
			return err
		}, connect.CodeOutOfRange, "offsets 0 to 0"},
		{"fetch waiting too long", func(c weirpbconnect.WeirClient) error {
			_, err := c.Fetch(t.Context(), connect.NewRequest(&weirpb.FetchRequest{Stream: "orders", MaxWait: durationpb.New(time.Minute)}))
			return err
		}, connect.CodeInvalidArgument, "max_wait must be 0 to 30s"},
		{"fetch negative max bytes", func(c weirpbconnect.WeirClient) error {
			_, err := c.Fetch(t.Context(), connect.NewRequest(&weirpb.FetchRequest{Stream: "orders", MaxBytes: -1}))
			return err
		}, connect.CodeInvalidArgument, "max_bytes"},
		{"describe unknown group", func(c weirpbconnect.WeirClient) error {
			_, err := c.DescribeGroup(t.Context(), connect.NewRequest(&weirpb.DescribeGroupRequest{Group: "nobody"}))
			return err
		}, connect.CodeNotFound, "nobody"},
		{"commit as an unknown member", func(c weirpbconnect.WeirClient) error {
			_, err := c.Commit(t.Context(), connect.NewRequest(&weirpb.CommitRequest{Group: "g", MemberId: "ghost", Generation: 1,
				Offsets: []*weirpb.OffsetCommit{{Stream: "orders", Partition: 0, Offset: 0}}}))
			return err
		}, connect.CodeFailedPrecondition, "ghost"},
		{"commit beyond the end", func(c weirpbconnect.WeirClient) error {
			_, err := c.Commit(t.Context(), connect.NewRequest(&weirpb.CommitRequest{Group: "g",
				Offsets: []*weirpb.OffsetCommit{{Stream: "orders", Partition: 0, Offset: 5}}}))
			return err
		}, connect.CodeOutOfRange, "beyond the end"},
		{"reset without a position", func(c weirpbconnect.WeirClient) error {
			_, err := c.ResetOffsets(t.Context(), connect.NewRequest(&weirpb.ResetOffsetsRequest{Group: "g", Stream: "orders"}))
			return err
		}, connect.CodeInvalidArgument, "to is required"},
		{"subscribe with negative credits", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, &weirpb.SubscribeRequest{Stream: "orders", Credits: -1, Mode: &weirpb.SubscribeRequest_Ephemeral{Ephemeral: &weirpb.EphemeralMode{}}})
		}, connect.CodeInvalidArgument, "credits must not be negative"},
		{"subscribe without a mode", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, &weirpb.SubscribeRequest{Stream: "orders"})
		}, connect.CodeInvalidArgument, "mode is required"},
		{"subscribe to an unknown stream", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, &weirpb.SubscribeRequest{Stream: "nope", Mode: &weirpb.SubscribeRequest_Ephemeral{Ephemeral: &weirpb.EphemeralMode{}}})
		}, connect.CodeNotFound, "nope"},
		{"subscribe with a bad session timeout", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, &weirpb.SubscribeRequest{Stream: "orders", Mode: &weirpb.SubscribeRequest_Group{Group: &weirpb.GroupMode{
				Group: "g", SessionTimeout: durationpb.New(time.Millisecond)}}})
		}, connect.CodeInvalidArgument, "session timeout"},
		{"credits for an unknown subscription", func(c weirpbconnect.WeirClient) error {
			_, err := c.AddCredits(t.Context(), connect.NewRequest(&weirpb.AddCreditsRequest{SubscriptionId: "0123", Credits: 1}))
			return err
		}, connect.CodeNotFound, "0123"},
		{"ack for an unknown subscription", func(c weirpbconnect.WeirClient) error {
			_, err := c.AckRevocation(t.Context(), connect.NewRequest(&weirpb.AckRevocationRequest{SubscriptionId: "0123", Generation: 1}))
			return err
		}, connect.CodeNotFound, "0123"},
	}
	for proto, c := range n.clients() {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				err := tt.call(c)
				wantCode(t, tt.name, err, tt.code)
				if err != nil && !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("error %q does not contain %q", err, tt.msg)
				}
			})
		}
	}
}

// firstEventError subscribes and returns the error the stream ends with.
func firstEventError(t *testing.T, c weirpbconnect.WeirClient, req *weirpb.SubscribeRequest) error {
	stream, err := c.Subscribe(t.Context(), connect.NewRequest(req))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
	}
	return stream.Err()
}

// postJSON is what curl does: a POST of a JSON body.
func postJSON(t *testing.T, n *node, method, body string) (int, map[string]any) {
	t.Helper()
	resp, err := n.h1.Post(n.base+"/weir.v1.Weir/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", method, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("POST %s: response %q is not JSON: %v", method, data, err)
	}
	return resp.StatusCode, out
}

func TestPlainHTTPJSON(t *testing.T) {
	n := startNode(t, "")
	status, out := postJSON(t, n, "CreateStream", `{"config":{"name":"orders","partitions":3}}`)
	if status != http.StatusOK || len(out["partitions"].([]any)) != 3 {
		t.Fatalf("CreateStream = %d %v", status, out)
	}

	value := base64.StdEncoding.EncodeToString([]byte("hello"))
	status, out = postJSON(t, n, "Publish",
		`{"stream":"orders","partition":1,"records":[{"key":"`+base64.StdEncoding.EncodeToString([]byte("k"))+`","value":"`+value+`","headers":[{"key":"content-type","value":"`+base64.StdEncoding.EncodeToString([]byte("text/plain"))+`"}]}]}`)
	if status != http.StatusOK {
		t.Fatalf("Publish = %d %v", status, out)
	}
	status, out = postJSON(t, n, "Fetch", `{"stream":"orders","partition":1,"offset":"0"}`)
	if status != http.StatusOK {
		t.Fatalf("Fetch = %d %v", status, out)
	}
	recs := out["records"].([]any)
	rec := recs[0].(map[string]any)
	if len(recs) != 1 || rec["value"] != value || rec["stream"] != "orders" || rec["partition"] != float64(1) ||
		rec["headers"].([]any)[0].(map[string]any)["key"] != "content-type" {
		t.Errorf("Fetch records = %v", recs)
	}

	// Errors are JSON with a code a person can read.
	for _, tt := range []struct {
		method, body string
		status       int
		code         string
	}{
		{"DescribeStream", `{"name":"nope"}`, http.StatusNotFound, "not_found"},
		{"CreateStream", `{"config":{"name":"orders"}}`, http.StatusConflict, "already_exists"},
		{"CreateStream", `{"config":{"name":`, http.StatusBadRequest, "invalid_argument"},      // malformed JSON
		{"CreateStream", `{"config":{"nmae":"x"}}`, http.StatusBadRequest, "invalid_argument"}, // unknown field
		{"Publish", `{"stream":"orders","records":[{"value":"not base64!"}]}`, http.StatusBadRequest, "invalid_argument"},
		{"Fetch", `{"stream":"orders","offset":"-1"}`, http.StatusBadRequest, "invalid_argument"},
	} {
		status, out := postJSON(t, n, tt.method, tt.body)
		if status != tt.status || out["code"] != tt.code || out["message"] == "" {
			t.Errorf("%s %s = %d %v, want %d %s with a message", tt.method, tt.body, status, out, tt.status, tt.code)
		}
	}

	// Malformed protobuf is rejected the same way.
	resp, err := n.h1.Post(n.base+"/weir.v1.Weir/CreateStream", "application/proto", bytes.NewReader([]byte{0x0a, 0xff, 0xff}))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "invalid_argument") {
		t.Errorf("malformed protobuf = %d %s, want 400 invalid_argument", resp.StatusCode, data)
	}
}

func TestGRPCWeb(t *testing.T) {
	n := startNode(t, "")
	c := weirpbconnect.NewWeirClient(n.h1, n.base, connect.WithGRPCWeb())
	createStream(t, c, "web", 1)
	if got := publish(t, c, "web", -1, "a", "b"); len(got) != 2 || got[1].GetOffset() != 1 {
		t.Errorf("Publish over gRPC-Web = %v", got)
	}
}
