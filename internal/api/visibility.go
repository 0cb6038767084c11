package api

// Visibility: the list and describe calls show a user only what the user
// may see, with the rule Kafka applies to Metadata and ListGroups (a
// resource is visible with any action on it, broker.Visible): lists leave
// the others out, and a describe of one is PermissionDenied, checked
// before the lookup, so that the answer is the same whether or not it
// exists (Kafka's TOPIC_AUTHORIZATION_FAILED for a topic without
// DESCRIBE, existing or not). Without authorization every call sees
// everything. See "Authorization" in docs/SECURITY.md.

import (
	"context"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// describeSubscription checks that the caller may see a subscription: its
// stream and itself (a queue rule covers both, as consuming asks).
func describeSubscription(ctx context.Context, stream, sub string) error {
	if err := broker.AuthorizeDescribe(ctx, auth.ResourceStream, stream); err != nil {
		return err
	}
	return broker.AuthorizeDescribe(ctx, auth.ResourceSubscription, sub)
}

// subscriptionVisible reports whether the caller may see a subscription.
func subscriptionVisible(ctx context.Context, stream, sub string) bool {
	return broker.Visible(ctx, auth.ResourceStream, stream) && broker.Visible(ctx, auth.ResourceSubscription, sub)
}

// visibleGroupInfo leaves out of a group's description the offsets of the
// streams the caller may not see (as Kafka's OffsetFetch refuses them).
func visibleGroupInfo(ctx context.Context, info broker.GroupInfo) broker.GroupInfo {
	offsets := info.Offsets[:0:0]
	for _, o := range info.Offsets {
		if broker.Visible(ctx, auth.ResourceStream, o.Stream) {
			offsets = append(offsets, o)
		}
	}
	info.Offsets = offsets
	return info
}
