package api

// Byte-rate quotas on the native API (auth.ByteRate, per user, shared with
// the user's Kafka, AMQP and MQTT connections; docs/SECURITY.md). Neither
// gRPC nor the JSON API has a throttle field, so a user past a quota is
// slowed, as on AMQP and MQTT: a publish call answers once the debt its
// records made is paid (a PublishStream reads its next request then), and
// a Subscribe loop, after sending records, waits out the debt before it
// reads or receives more, within the credits or prefetch it has. Nothing is
// buffered meanwhile and the call stays open. A record counts its key,
// value and headers (recordBytes, as the metrics), an event its data and
// metadata.

import (
	"context"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// paceProduce holds a publish call after it stored recs while the caller's
// user is past its produce quota, or until ctx ends.
func paceProduce(ctx context.Context, recs []broker.Record) {
	pace(ctx, principalOf(ctx).ProduceQuota(), recs, recordBytes)
}

// paceDelivered holds a Subscribe loop after it sent n record bytes while
// the caller's user is past its consume quota, or until ctx ends.
func paceDelivered(ctx context.Context, n int) {
	principalOf(ctx).ConsumeQuota().Pace(ctx, n)
}

// paceAppended holds AppendEvents after it stored events while the
// caller's user is past its produce quota.
func paceAppended(ctx context.Context, evs []broker.NewEvent) {
	pace(ctx, principalOf(ctx).ProduceQuota(), evs, func(e *broker.NewEvent) int { return len(e.Data) + len(e.Metadata) })
}

// paceEvents holds an event subscription after it sent events while the
// caller's user is past its consume quota.
func paceEvents(ctx context.Context, evs []broker.Event) {
	pace(ctx, principalOf(ctx).ConsumeQuota(), evs, func(e *broker.Event) int { return len(e.Data) + len(e.Metadata) })
}

// pace holds the call for the debt that items, sized by size, make on q
// (nil: no quota, and nothing is sized), or until ctx ends.
func pace[T any](ctx context.Context, q *auth.ByteRate, items []T, size func(*T) int) {
	if q == nil {
		return
	}
	n := 0
	for i := range items {
		n += size(&items[i])
	}
	q.Pace(ctx, n)
}

// principalOf is the principal of the call's user (nil without
// authentication: no quota).
func principalOf(ctx context.Context) *auth.Principal {
	p, _ := broker.PrincipalFrom(ctx)
	return p
}
