// Package connector holds what Weir's source connectors share: the Sink they
// write records through (the broker, as a protocol front end does: never
// storage directly), the Store that keeps their progress in Weir's state, and
// the Supervisor that runs one and restarts it with backoff after an error.
// Sources live in subpackages (postgres: change data capture).
package connector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// Record is one record a connector writes to a stream.
type Record struct {
	Stream  string
	Key     []byte // nil: no key
	Value   []byte // nil: a tombstone
	Headers []broker.Header
	// Create, when set, configures the stream if the sink must create it
	// (nil: the sink's defaults). Records routed away from the change
	// streams (an outbox router's) need settings of their own.
	Create *StreamDefaults
}

// Sink stores records. Write returns once every record is durable (under
// the broker's fsync policy) or returns an error; records of one stream are
// stored in the order given.
type Sink interface {
	Write(ctx context.Context, recs []Record) error
}

// StreamCreator is a Sink that can create streams ahead of the first
// record, so that consumers can subscribe to a table's stream before it
// changes.
type StreamCreator interface {
	EnsureStreams(ctx context.Context, names []string) error
}

// StreamDefaults configure the streams a BrokerSink creates.
type StreamDefaults struct {
	Partitions int32 // 0: 1
	// Compacted keeps the newest record per key (change streams: the latest
	// row image per primary key, a delete's tombstone removing the key).
	Compacted bool
	// DedupWindow: 0 the broker's default, negative none.
	DedupWindow time.Duration
}

// BrokerSink writes records to a broker, creating missing streams with its
// defaults.
type BrokerSink struct {
	broker   *broker.Broker
	defaults StreamDefaults

	mu    sync.Mutex
	known map[string]bool // streams known to exist
}

// NewBrokerSink returns a sink over b.
func NewBrokerSink(b *broker.Broker, defaults StreamDefaults) *BrokerSink {
	return &BrokerSink{broker: b, defaults: defaults, known: make(map[string]bool)}
}

// Write publishes recs, one publish per stream, the streams in parallel.
func (s *BrokerSink) Write(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	var order []string
	byStream := make(map[string][]broker.Record)
	create := make(map[string]*StreamDefaults)
	for _, r := range recs {
		if _, ok := byStream[r.Stream]; !ok {
			order = append(order, r.Stream)
		}
		byStream[r.Stream] = append(byStream[r.Stream], broker.Record{Key: r.Key, Value: r.Value, Headers: r.Headers})
		if r.Create != nil {
			create[r.Stream] = r.Create
		}
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, name := range order {
		d := s.defaults
		if c := create[name]; c != nil {
			d = *c
		}
		wg.Go(func() { errs[i] = s.publish(ctx, name, d, byStream[name]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *BrokerSink) publish(ctx context.Context, name string, d StreamDefaults, recs []broker.Record) error {
	if err := s.ensure(ctx, name, d); err != nil {
		return err
	}
	_, err := s.broker.Publish(ctx, name, recs)
	if errors.Is(err, broker.ErrStreamNotFound) {
		// Deleted since it was created: create it again.
		s.mu.Lock()
		delete(s.known, name)
		s.mu.Unlock()
		if err := s.ensure(ctx, name, d); err != nil {
			return err
		}
		_, err = s.broker.Publish(ctx, name, recs)
	}
	if err != nil {
		return fmt.Errorf("publish to stream %q: %w", name, err)
	}
	return nil
}

// EnsureStreams creates the streams that do not exist (StreamCreator).
func (s *BrokerSink) EnsureStreams(ctx context.Context, names []string) error {
	for _, name := range names {
		if err := s.ensure(ctx, name, s.defaults); err != nil {
			return err
		}
	}
	return nil
}

// ensure creates the stream with d unless it exists.
func (s *BrokerSink) ensure(ctx context.Context, name string, d StreamDefaults) error {
	s.mu.Lock()
	known := s.known[name]
	s.mu.Unlock()
	if known {
		return nil
	}
	if _, err := s.broker.DescribeStream(name); err != nil {
		if !errors.Is(err, broker.ErrStreamNotFound) {
			return err
		}
		_, err := s.broker.CreateStream(ctx, broker.StreamConfig{
			Name: name, Partitions: d.Partitions, Compacted: d.Compacted, DedupWindow: d.DedupWindow,
		})
		if err != nil && !errors.Is(err, broker.ErrStreamExists) {
			return fmt.Errorf("create stream %q: %w", name, err)
		}
	}
	s.mu.Lock()
	s.known[name] = true
	s.mu.Unlock()
	return nil
}
