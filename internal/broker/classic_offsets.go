package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/state"
)

// ErrGroupSubscribed is returned for an offset that cannot be deleted
// because the group's members consume its stream.
var ErrGroupSubscribed = errors.New("group is subscribed to the stream")

// ClassicSubscriptions tells which streams a classic group's members
// consume, from their protocol metadata (opaque to the broker): ok is false
// when the protocol type's metadata cannot say.
type ClassicSubscriptions func(protocolType string, metadata [][]byte) (streams []string, ok bool)

// DeleteGroupOffsets deletes a group's committed offsets of some
// partitions (Kafka's OffsetDelete). An offset of a stream the group's
// members consume is refused with ErrGroupSubscribed (per partition); a
// partition that does not exist gets ErrStreamNotFound or
// ErrPartitionNotFound. The whole request fails with ErrGroupNotFound when
// the group has neither members nor offsets, and with ErrGroupNotEmpty when
// it has classic members whose subscriptions cannot be known. The check and
// the deletion happen under the classic groups' lock, so no classic member
// joins in between.
func (b *Broker) DeleteGroupOffsets(ctx context.Context, groupName string, parts []PartitionRef, subscriptions ClassicSubscriptions) ([]error, error) {
	if err := Authorize(ctx, auth.ResourceGroup, groupName, auth.ActionManage); err != nil {
		return nil, err
	}
	if err := ValidateGroupName(groupName); err != nil {
		return nil, err
	}
	var subscribed []string
	native, err := b.DescribeGroup(groupName)
	if err != nil && !errors.Is(err, ErrGroupNotFound) {
		return nil, err
	}
	for _, m := range native.Members {
		subscribed = append(subscribed, m.Streams...)
	}
	nativeFound := err == nil
	r := &b.classic
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.groups[groupName]; ok && len(g.members) > 0 {
		metadata := make([][]byte, 0, len(g.members))
		for _, m := range g.members {
			md := m.metadata(g.protocol)
			if md == nil && len(m.protocols) > 0 {
				md = m.protocols[0].Metadata // no protocol chosen yet
			}
			metadata = append(metadata, md)
		}
		streams, ok := subscriptions(g.protocolType, metadata)
		if !ok {
			return nil, fmt.Errorf("%w: %q uses protocol type %q, whose subscriptions Weir cannot read", ErrGroupNotEmpty, groupName, g.protocolType)
		}
		subscribed = append(subscribed, streams...)
	} else if !nativeFound {
		return nil, fmt.Errorf("%w: %q", ErrGroupNotFound, groupName)
	}
	errs := make([]error, len(parts))
	var keys []state.OffsetKey
	for i, p := range parts {
		s, err := b.stream(p.Stream)
		if err == nil {
			_, err = s.partition(p.Partition)
		}
		if err == nil && slices.Contains(subscribed, p.Stream) {
			err = fmt.Errorf("%w: group %q consumes %q", ErrGroupSubscribed, groupName, p.Stream)
		}
		errs[i] = err
		if err == nil {
			keys = append(keys, state.OffsetKey{Group: groupName, Stream: p.Stream, Partition: p.Partition})
		}
	}
	if len(keys) == 0 {
		return errs, nil
	}
	return errs, b.state.Update(func(tx *state.Tx) error {
		for _, k := range keys {
			if err := tx.DeleteOffset(k); err != nil {
				return err
			}
		}
		return nil
	})
}
