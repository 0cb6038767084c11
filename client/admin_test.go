package weir_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weir "github.com/weirmq/weir/client"
)

// TestAdmin runs the stream and group administration over each protocol.
func TestAdmin(t *testing.T) {
	srv := startServer(t)
	for _, proto := range []weir.Protocol{weir.GRPC, weir.ConnectProto, weir.ConnectJSON} {
		t.Run(proto.String(), func(t *testing.T) {
			c := srv.dial(t, weir.WithProtocol(proto), weir.WithTimeout(10*time.Second))
			ctx := t.Context()
			name := "admin-" + strings.NewReplacer("+", "-").Replace(proto.String())
			info, err := c.CreateStream(ctx, weir.StreamConfig{
				Name: name, Partitions: 3, RetentionAge: time.Hour, RetentionBytes: 1 << 30,
				DedupWindow: time.Minute,
			})
			if err != nil {
				t.Fatalf("CreateStream: %v", err)
			}
			if info.Config.Name != name || info.Config.Partitions != 3 || len(info.Partitions) != 3 ||
				info.Config.RetentionAge != time.Hour || info.Config.RetentionBytes != 1<<30 || len(info.ID) != 32 {
				t.Errorf("CreateStream = %+v", info)
			}
			if time.Since(info.CreatedAt) > time.Minute {
				t.Errorf("CreatedAt = %v", info.CreatedAt)
			}

			_, err = c.CreateStream(ctx, weir.StreamConfig{Name: name})
			if !errors.Is(err, weir.ErrAlreadyExists) || connect.CodeOf(err) != connect.CodeAlreadyExists {
				t.Errorf("CreateStream again: %v, want ErrAlreadyExists", err)
			}

			streams, err := c.ListStreams(ctx)
			if err != nil {
				t.Fatalf("ListStreams: %v", err)
			}
			if !slices.ContainsFunc(streams, func(s weir.StreamInfo) bool { return s.Config.Name == name }) {
				t.Errorf("ListStreams = %+v, want %q among them", streams, name)
			}

			if _, err := c.Publish(ctx, name, weir.Record{Value: []byte("a")}, weir.Record{Value: []byte("b")}, weir.Record{Value: []byte("c")}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			info, err = c.DescribeStream(ctx, name)
			if err != nil {
				t.Fatalf("DescribeStream: %v", err)
			}
			if info.Records() != 3 || info.Bytes() == 0 {
				t.Errorf("DescribeStream: %d records, %d bytes; want 3 and some", info.Records(), info.Bytes())
			}

			info, err = c.AddPartitions(ctx, name, 5)
			if err != nil || len(info.Partitions) != 5 {
				t.Errorf("AddPartitions(5) = %v, %v", info, err)
			}

			if err := c.DeleteStream(ctx, name); err != nil {
				t.Fatalf("DeleteStream: %v", err)
			}
			_, err = c.DescribeStream(ctx, name)
			if !errors.Is(err, weir.ErrNotFound) || connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("DescribeStream after delete: %v, want ErrNotFound", err)
			}
			var werr *weir.Error
			if !errors.As(err, &werr) || !strings.Contains(werr.Message, name) {
				t.Errorf("error %v does not carry the server's message naming %q", err, name)
			}
		})
	}
}

// TestBadInput checks that bad requests come back as clear errors.
func TestBadInput(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "limits", 1)
	handler := func(context.Context, *weir.Message) error { return nil }

	tests := []struct {
		name string
		call func() error
		want error
		code connect.Code
		text string
	}{
		{"describe unknown stream", func() error { _, err := c.DescribeStream(ctx, "nope"); return err }, weir.ErrNotFound, connect.CodeNotFound, "nope"},
		{"publish to unknown stream", func() error { _, err := c.Publish(ctx, "nope", weir.Record{Value: []byte("x")}); return err }, weir.ErrNotFound, connect.CodeNotFound, "nope"},
		{"delete unknown stream", func() error { return c.DeleteStream(ctx, "nope") }, weir.ErrNotFound, connect.CodeNotFound, "nope"},
		{"consume unknown stream", func() error {
			_, err := c.Consume(ctx, "nope", handler, weir.Group("g"))
			return err
		}, weir.ErrNotFound, connect.CodeNotFound, "nope"},
		{"ephemeral on unknown stream", func() error { _, err := c.Consume(ctx, "nope", handler, weir.Ephemeral()); return err }, weir.ErrNotFound, connect.CodeNotFound, "nope"},
		{"invalid stream name", func() error { _, err := c.CreateStream(ctx, weir.StreamConfig{Name: "bad name!"}); return err }, weir.ErrInvalidArgument, connect.CodeInvalidArgument, "bad name!"},
		{"empty stream name", func() error { _, err := c.CreateStream(ctx, weir.StreamConfig{}); return err }, weir.ErrInvalidArgument, connect.CodeInvalidArgument, "name"},
		{"too many partitions", func() error {
			_, err := c.CreateStream(ctx, weir.StreamConfig{Name: "huge", Partitions: 1 << 20})
			return err
		}, weir.ErrInvalidArgument, connect.CodeInvalidArgument, "partitions"},
		{"invalid group name", func() error { _, err := c.Consume(ctx, "limits", handler, weir.Group("a/b")); return err }, weir.ErrInvalidArgument, connect.CodeInvalidArgument, "a/b"},
		{"record over the size limit", func() error {
			_, err := c.Publish(ctx, "limits", weir.Record{Value: bytes.Repeat([]byte("x"), 1<<20+1)})
			return err
		}, weir.ErrResourceExhausted, connect.CodeResourceExhausted, "too large"},
		{"publish to missing partition", func() error { _, err := c.PublishPartition(ctx, "limits", 7, weir.Record{}); return err }, weir.ErrNotFound, connect.CodeNotFound, "7"},
		{"conflicting consume modes", func() error {
			_, err := c.Consume(ctx, "limits", handler, weir.Group("g"), weir.Ephemeral())
			return err
		}, weir.ErrInvalidArgument, connect.CodeUnknown, "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if tt.code != connect.CodeUnknown && connect.CodeOf(err) != tt.code {
				t.Errorf("connect.CodeOf(%v) = %v, want %v", err, connect.CodeOf(err), tt.code)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not mention %q", err, tt.text)
			}
		})
	}

	// The stream still takes records of the limit's size.
	if _, err := c.Publish(ctx, "limits", weir.Record{Value: bytes.Repeat([]byte("x"), 1<<20-100)}); err != nil {
		t.Errorf("Publish of a record under the limit: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, addr := range []string{"", "no-port", "ftp://x:1", "http://"} {
		if _, err := weir.Dial(ctx, addr); !errors.Is(err, weir.ErrInvalidArgument) {
			t.Errorf("Dial(%q) = %v, want ErrInvalidArgument", addr, err)
		}
	}
	// Nothing listens on port 1.
	_, err := weir.Dial(ctx, "127.0.0.1:1")
	if !errors.Is(err, weir.ErrUnavailable) {
		t.Errorf("Dial to a closed port = %v, want ErrUnavailable", err)
	}
	c, err := weir.Dial(ctx, "127.0.0.1:1", weir.WithoutDialCheck())
	if err != nil {
		t.Fatalf("Dial without check: %v", err)
	}
	c.Close()
	if _, err := c.ListStreams(ctx); !errors.Is(err, weir.ErrClosed) {
		t.Errorf("ListStreams after Close = %v, want ErrClosed", err)
	}
}

func TestGroupAdmin(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "orders", 2)
	for i := range 10 {
		if _, err := c.PublishPartition(ctx, "orders", int32(i%2), weir.Record{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DescribeGroup(ctx, "billing"); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("DescribeGroup of an unknown group = %v, want ErrNotFound", err)
	}
	if err := c.CommitOffsets(ctx, "billing", weir.PartitionOffset{Stream: "orders", Partition: 0, Offset: 3}); err != nil {
		t.Fatalf("CommitOffsets: %v", err)
	}
	groups, err := c.ListGroups(ctx)
	if err != nil || !slices.Contains(groups, "billing") {
		t.Errorf("ListGroups = %v, %v; want billing", groups, err)
	}
	g, err := c.DescribeGroup(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Offsets) != 1 || g.Offsets[0].Offset != 3 || g.Offsets[0].Lag != 2 || g.Lag() != 2 {
		t.Errorf("DescribeGroup = %+v, want offset 3 lag 2 in partition 0", g.Offsets)
	}
	g, err = c.ResetOffsets(ctx, "billing", "orders", weir.Earliest())
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Offsets) != 2 || g.Lag() != 10 {
		t.Errorf("after reset to earliest: %+v, want two partitions, lag 10", g.Offsets)
	}
	g, err = c.ResetOffsets(ctx, "billing", "orders", weir.AtOffset(4))
	if err != nil || g.Lag() != 2 {
		t.Errorf("reset to offset 4: %+v, %v; want lag 2", g, err)
	}

	// A group with a live member refuses a reset.
	cons, err := c.Consume(ctx, "orders", func(context.Context, *weir.Message) error { return nil }, weir.Group("billing"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the member to show", func() bool {
		g, err := c.DescribeGroup(ctx, "billing")
		return err == nil && len(g.Members) == 1
	})
	if _, err := c.ResetOffsets(ctx, "billing", "orders", weir.Latest()); !errors.Is(err, weir.ErrFailedPrecondition) {
		t.Errorf("ResetOffsets with a member = %v, want ErrFailedPrecondition", err)
	}
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the member to leave", func() bool {
		g, err := c.DescribeGroup(ctx, "billing")
		return err == nil && len(g.Members) == 0
	})
}
