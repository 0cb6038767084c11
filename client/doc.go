// Package weir is the Go client of Weir's native API: stream, queue,
// subscription and group administration, publishing (synchronous, or
// asynchronous and batched with a Producer) and consuming (consumer groups,
// competing consumers of queues and shared subscriptions, ephemeral fan-out,
// or replay from positions), over gRPC (the default, HTTP/2 without TLS for
// http:// servers) or the Connect protocol.
//
//	c, err := weir.Dial(ctx, "localhost:8080")
//	if err != nil { ... }
//	defer c.Close()
//	_, err = c.CreateStream(ctx, weir.StreamConfig{Name: "orders", Partitions: 8})
//	res, err := c.Publish(ctx, "orders", weir.Record{Key: []byte("42"), Value: []byte("paid")})
//	cons, err := c.Consume(ctx, "orders", func(ctx context.Context, m *weir.Message) error {
//		fmt.Printf("%s/%d@%d %s\n", m.Stream, m.Partition, m.Offset, m.Value)
//		return nil
//	}, weir.Group("billing"), weir.Start(weir.Earliest()))
//
// A queue has competing consumers that acknowledge each record: the
// handler's nil return acks it, an error nacks it (it comes back after a
// backoff, and goes to the dead-letter stream after MaxDeliveries).
//
//	_, err = c.CreateQueue(ctx, weir.QueueConfig{Name: "emails",
//		Subscription: weir.SubscriptionConfig{MaxDeliveries: 5}})
//	_, err = c.Publish(ctx, "emails", weir.Record{Value: body,
//		Headers: []weir.Header{weir.DeliverAfter(time.Minute)}})
//	cons, err = c.Consume(ctx, "emails", func(ctx context.Context, m *weir.Message) error {
//		return send(ctx, m.Value)
//	}, weir.Shared(""), weir.Prefetch(20))
//
// Errors returned by calls to the server carry its code and message: they
// are *Error values, connect.CodeOf works on them, and errors.Is matches them
// against ErrNotFound, ErrAlreadyExists, ErrInvalidArgument and the other
// sentinels of this package.
//
// The types of this package are its own; the generated protobuf types of
// weirpb are converted in one place and never needed by callers.
package weir
