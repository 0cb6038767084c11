package weir

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// CreateStream creates a stream and returns its description. It fails with
// ErrAlreadyExists when the name is taken and ErrInvalidArgument when the
// name or the configuration is not acceptable.
func (c *Client) CreateStream(ctx context.Context, cfg StreamConfig) (*StreamInfo, error) {
	resp, err := call(ctx, c, "create stream "+quote(cfg.Name), c.api.CreateStream,
		&weirpb.CreateStreamRequest{Config: toPBStreamConfig(cfg)})
	if err != nil {
		return nil, err
	}
	return fromPBStreamInfo(resp), nil
}

// ServerInfo is what ServerInfo reports: the server's build version and
// the user the client authenticated as (empty without authentication).
type ServerInfo struct {
	Version string
	User    string
}

// ServerInfo asks the server for its version and the client's user: the
// cheapest call there is, which Dial makes to check the address and the
// credentials.
func (c *Client) ServerInfo(ctx context.Context) (ServerInfo, error) {
	resp, err := call(ctx, c, "server info", c.api.ServerInfo, &weirpb.ServerInfoRequest{})
	if err != nil {
		return ServerInfo{}, err
	}
	return ServerInfo{Version: resp.GetVersion(), User: resp.GetUser()}, nil
}

// ListStreams describes every stream.
func (c *Client) ListStreams(ctx context.Context) ([]StreamInfo, error) {
	resp, err := call(ctx, c, "list streams", c.api.ListStreams, &weirpb.ListStreamsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]StreamInfo, 0, len(resp.GetStreams()))
	for _, s := range resp.GetStreams() {
		out = append(out, *fromPBStreamInfo(s))
	}
	return out, nil
}

// DescribeStream describes a stream and its partitions; ErrNotFound when
// there is none of that name.
func (c *Client) DescribeStream(ctx context.Context, name string) (*StreamInfo, error) {
	resp, err := call(ctx, c, "describe stream "+quote(name), c.api.DescribeStream,
		&weirpb.DescribeStreamRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return fromPBStreamInfo(resp), nil
}

// DeleteStream deletes a stream and its records.
func (c *Client) DeleteStream(ctx context.Context, name string) error {
	_, err := call(ctx, c, "delete stream "+quote(name), c.api.DeleteStream,
		&weirpb.DeleteStreamRequest{Name: name})
	return err
}

// AddPartitions grows a stream to total partitions. Keys map to partitions
// by their hash modulo the count, so records of one key published before
// and after may be in different partitions.
func (c *Client) AddPartitions(ctx context.Context, name string, total int32) (*StreamInfo, error) {
	resp, err := call(ctx, c, "add partitions to "+quote(name), c.api.AddPartitions,
		&weirpb.AddPartitionsRequest{Name: name, Total: total})
	if err != nil {
		return nil, err
	}
	return fromPBStreamInfo(resp), nil
}

// ListGroups names every consumer group with members or committed offsets.
func (c *Client) ListGroups(ctx context.Context) ([]string, error) {
	resp, err := call(ctx, c, "list groups", c.api.ListGroups, &weirpb.ListGroupsRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetGroups(), nil
}

// DescribeGroup describes a group's members and committed offsets with their
// lag; ErrNotFound when it has neither.
func (c *Client) DescribeGroup(ctx context.Context, group string) (*GroupInfo, error) {
	resp, err := call(ctx, c, "describe group "+quote(group), c.api.DescribeGroup,
		&weirpb.DescribeGroupRequest{Group: group})
	if err != nil {
		return nil, err
	}
	return fromPBGroupInfo(resp), nil
}

// ResetOffsets moves a group's committed offsets in every partition of a
// stream to a position. The group must have no active members
// (ErrFailedPrecondition otherwise).
func (c *Client) ResetOffsets(ctx context.Context, group, stream string, to StartPosition) (*GroupInfo, error) {
	resp, err := call(ctx, c, "reset offsets of group "+quote(group), c.api.ResetOffsets,
		&weirpb.ResetOffsetsRequest{Group: group, Stream: stream, To: toPBStart(to)})
	if err != nil {
		return nil, err
	}
	return fromPBGroupInfo(resp), nil
}

// CommitOffsets records a group's positions (each offset is the next record
// to process) outside of a consumer: for tools and for consumers that keep
// their own assignment. The group must have no active members.
func (c *Client) CommitOffsets(ctx context.Context, group string, offsets ...PartitionOffset) error {
	_, err := call(ctx, c, "commit offsets of group "+quote(group), c.api.Commit,
		&weirpb.CommitRequest{Group: group, Offsets: toPBCommits(offsets)})
	return err
}

func toPBCommits(offsets []PartitionOffset) []*weirpb.OffsetCommit {
	out := make([]*weirpb.OffsetCommit, len(offsets))
	for i, o := range offsets {
		out[i] = &weirpb.OffsetCommit{Stream: o.Stream, Partition: o.Partition, Offset: o.Offset}
	}
	return out
}

// FetchResult is what Fetch read from one partition.
type FetchResult struct {
	Records     []Record
	NextOffset  int64 // where the next Fetch starts
	HighWater   int64 // the partition's end offset when it answered
	StartOffset int64 // the partition's oldest retained offset
}

// Fetch reads records of one partition from offset, at most maxBytes of
// them (0: 1 MiB). With maxWait > 0 it waits that long (at most 30s) for a
// record when there is none yet.
func (c *Client) Fetch(ctx context.Context, stream string, partition int32, offset int64, maxBytes int32, maxWait time.Duration) (*FetchResult, error) {
	req := &weirpb.FetchRequest{Stream: stream, Partition: partition, Offset: offset, MaxBytes: maxBytes}
	if maxWait > 0 {
		req.MaxWait = durationpb.New(maxWait)
	}
	resp, err := call(ctx, c, "fetch from "+quote(stream), c.api.Fetch, req)
	if err != nil {
		return nil, err
	}
	out := &FetchResult{NextOffset: resp.GetNextOffset(), HighWater: resp.GetHighWater(), StartOffset: resp.GetStartOffset()}
	out.Records = make([]Record, len(resp.GetRecords()))
	for i, r := range resp.GetRecords() {
		out.Records[i] = fromPBRecord(r, stream)
	}
	return out, nil
}
