// Package weir is the Go client of Weir's native API: stream, queue,
// subscription and group administration, publishing (synchronous, or
// asynchronous and batched with a Producer) and consuming (consumer groups,
// competing consumers of queues and shared subscriptions, ephemeral fan-out,
// or replay from positions), over gRPC (the default, HTTP/2 without TLS for
// http:// servers) or the Connect protocol. For TLS, give an https:// URL
// (the system's CAs) or WithTLS with the CAs and any client certificate.
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
//
// # Idempotent consumers
//
// Idempotent wraps any Handler so that records whose message-id header was
// processed already are skipped (and acknowledged or committed): the
// duplicates the stream's dedup window lets through, and redeliveries after
// a lost ack. The ids live in an IdempotencyStore: MemoryIdempotencyStore,
// bounded by a number of ids and a TTL, or one of your own over a shared
// database. An id is marked processed only when the handler succeeds, and
// records of one id are never handled concurrently. Records without a
// message-id are handled every time.
//
//	store := weir.NewMemoryIdempotencyStore(100_000, time.Hour)
//	cons, err = c.Consume(ctx, "payments", weir.Idempotent(store, charge), weir.Shared(""))
//
// # CloudEvents
//
// CloudEvent is a CloudEvents 1.0 event. PublishEvents (and Producer.SendEvent)
// write events as the CloudEvents Kafka protocol binding's binary mode does:
// attributes in ce_ headers (ce_specversion, ce_id, ce_source, ce_type,
// ce_time, ce_subject, ce_dataschema, ce_<extension>), datacontenttype in
// content-type, data as the value, the partitionkey extension as the key;
// and a message-id of source and id, so that the stream deduplicates an
// event published twice. Record.CloudEvent (and so Message.CloudEvent)
// reads binary mode and structured mode (application/cloudevents+json);
// CloudEventHandler makes a Handler of a function of events. Events that
// lack a required attribute fail with ErrInvalidCloudEvent, which names it.
//
//	_, err = c.PublishEvents(ctx, "orders", weir.CloudEvent{ID: id, Source: "/shop",
//		Type: "com.example.order.paid", DataContentType: "application/json", Data: body})
//	cons, err = c.Consume(ctx, "orders", weir.CloudEventHandler(func(ctx context.Context, e *weir.CloudEvent, m *weir.Message) error {
//		return route(ctx, e.Type, e.Data)
//	}), weir.Group("billing"))
//
// # Transactional outbox
//
// WriteOutbox inserts events into an outbox table inside the caller's own
// transaction (*sql.Tx; a pgx.Tx through OutboxExecFunc), so that an event
// exists if and only if the business change committed. The table is
// Debezium's shape (OutboxTablePostgres, OutboxTableSQLite,
// OutboxTableMySQL). With PostgreSQL, a Weir CDC connector given the table
// (PostgresConnectorConfig.Outbox, or weir connector create postgres
// --outbox-table) publishes each inserted row; elsewhere an OutboxRelay
// polls the table, publishes the rows in id order and deletes them once the
// broker confirmed them. Both write the record to outbox.event.<aggregate
// type> with key = aggregate id, message-id = the event id and a type
// header, so a row published twice (a relay or connector restarted between
// publish and acknowledgement) is dropped by the stream's dedup window.
//
//	tx, err := db.BeginTx(ctx, nil)
//	// ... the business change in tx ...
//	err = weir.WriteOutbox(ctx, tx, weir.OutboxEvent{AggregateType: "order",
//		AggregateID: "42", Type: "OrderPlaced", Payload: body})
//	err = tx.Commit()
//
//	relay := &weir.OutboxRelay{DB: db, Client: c, Outbox: weir.Outbox{Dialect: weir.OutboxSQLite}}
//	err = relay.Run(ctx)
//
// # Event store
//
// Append adds events to an aggregate (an id like "order-123", whose
// category is "order": the part before the first '-') all or none, if it is
// at the expected version: AnyVersion, NoStream, StreamExists, or a version
// (its number of events). Otherwise it fails with a *VersionConflictError
// (errors.Is(err, ErrVersionConflict)) holding the current version. Events
// without an ID get a random UUID; an Append retried with the same ids
// stores nothing twice and answers the first one's result (Duplicate).
// Read returns an aggregate's events from a version; ReadAll the global
// order from a position. SubscribeAll and SubscribeCategory follow the
// global order from a position (or FromEnd): Next returns each event once,
// in position order, Position says where to resume, and a lost connection
// is reopened from there.
//
//	res, err := c.Append(ctx, "order-123", weir.ExpectedVersion(version),
//		weir.EventData{Type: "OrderPaid", Data: body, CausationID: cmdID})
//	if errors.Is(err, weir.ErrVersionConflict) { /* read again, decide again */ }
//	sub, err := c.SubscribeCategory(ctx, "order", checkpoint)
//	for { e, err := sub.Next(); /* apply e, store sub.Position() */ }
//
// # CQRS projections
//
// Project applies the events of a stream (every partition, by offset), of
// an event-store category or of every event (by global position) to a read
// model in PostgreSQL, SQLite or MySQL, in batches: each batch's Apply calls
// and its checkpoint (table weir_projections, ProjectionDDL) share one
// transaction, so every event changes the read model exactly once, across
// crashes too. Nothing is committed to the broker. RebuildProjection runs
// Reset and clears the checkpoint in one transaction; the next Project
// starts from the beginning.
//
//	p := weir.Projection{Name: "order-totals", DB: db, Dialect: weir.OutboxPostgres, Category: "order",
//		Apply: func(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
//			_, err := tx.ExecContext(ctx, `UPDATE totals SET n = n + 1 WHERE id = $1`, ev.Event.Aggregate)
//			return err
//		},
//		Reset: func(ctx context.Context, tx *sql.Tx) error { _, err := tx.ExecContext(ctx, `DELETE FROM totals`); return err }}
//	err := c.Project(ctx, p) // until ctx is done, Apply fails or the checkpoint moved
//
// # Tracing
//
// The client traces with OpenTelemetry: Publish, PublishPartition and each
// record of a Producer run in a span of kind producer named "publish
// <stream>", whose context goes into the records' traceparent and
// tracestate headers (W3C trace context); a consumer handles each message in
// a span of kind consumer named "process <stream>", the child of the
// producer span whose context the message carries, and passes the span in
// the handler's context. The spans carry the messaging semantic
// conventions' attributes (messaging.system "weir",
// messaging.destination.name, messaging.operation.type and .name,
// messaging.destination.partition.id, messaging.message.id, the consumer
// group or subscription) and messaging.weir.offset. WithTracerProvider and
// WithPropagator choose the provider and propagator; by default the global
// ones, which do nothing until the application sets them (until then the
// client starts no spans, and the trace context of the caller and of the
// records still propagates):
//
//	otel.SetTracerProvider(tp)
//	otel.SetTextMapPropagator(propagation.TraceContext{})
//	c, err := weir.Dial(ctx, addr)
package weir
