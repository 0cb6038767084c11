package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// ErrUnsupported is wrapped when a driver cannot run part of a workload
// (Kafka has no per-record acknowledgement for shared subscriptions, say).
var ErrUnsupported = errors.New("not supported by this driver")

// Topic is what a driver creates for one topic of a workload.
type Topic struct {
	Name       string
	Partitions int
	// Subscriptions are the names of the topic's subscriptions, each of
	// which receives every record.
	Subscriptions []string
	// Shared is true for queue semantics (SubscriptionShared).
	Shared bool
}

// Driver connects the harness to one messaging system.
type Driver interface {
	// Create creates the topics and their subscriptions, so that records
	// published from now on are kept for every subscription.
	Create(ctx context.Context, topics []Topic) error
	// NewProducer returns a producer that may publish to any topic.
	NewProducer(ctx context.Context) (Producer, error)
	// NewConsumer starts a consumer of one subscription of a topic, from
	// its first record. It calls handle with each record's value (from any
	// goroutine) and acknowledges the record, as the subscription's type
	// wants, once handle returned.
	NewConsumer(ctx context.Context, topic Topic, subscription string, prefetch int, handle func(value []byte)) (Consumer, error)
	// Delete removes the topics and their subscriptions.
	Delete(ctx context.Context, topics []Topic) error
	// Notes says how the driver maps the workload onto its system (what it
	// ignores or approximates), for the result.
	Notes() []string
	Close() error
}

// Producer publishes records asynchronously.
type Producer interface {
	// Send publishes value to topic and calls done once the system
	// acknowledged it (or failed). It may block while the driver's own
	// buffers are full.
	Send(ctx context.Context, topic string, key, value []byte, done func(error))
	// Close waits for the records sent to be acknowledged or failed.
	Close(ctx context.Context) error
}

// Consumer is a running consumer.
type Consumer interface {
	Close(ctx context.Context) error
}

// DriverConfig is what every driver is opened with.
type DriverConfig struct {
	// URL is the server's address in the driver's own form.
	URL string
	// Options are the driver's own settings (key=value on the command
	// line); a driver refuses keys it does not know.
	Options map[string]string
}

// Opener opens a driver.
type Opener func(ctx context.Context, cfg DriverConfig) (Driver, error)

var (
	registryMu sync.Mutex
	registry   = map[string]driverEntry{}
)

type driverEntry struct {
	open       Opener
	defaultURL string
	options    string
}

// Register makes a driver known by name. defaultURL is used when none is
// given; options documents the driver's options for the help text.
func Register(name, defaultURL, options string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[name] = driverEntry{open: open, defaultURL: defaultURL, options: options}
}

// Drivers lists the known drivers with their default URL and options.
func Drivers() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var names []string
	for name, e := range registry {
		names = append(names, fmt.Sprintf("%-6s default URL %s; options: %s", name, e.defaultURL, e.options))
	}
	sort.Strings(names)
	return names
}

// Open opens the named driver.
func Open(ctx context.Context, name string, cfg DriverConfig) (Driver, error) {
	registryMu.Lock()
	e, ok := registry[name]
	registryMu.Unlock()
	if !ok {
		var known []string
		for _, d := range Drivers() {
			known = append(known, strings.Fields(d)[0])
		}
		return nil, fmt.Errorf("unknown driver %q: want one of %s", name, strings.Join(known, ", "))
	}
	if cfg.URL == "" {
		cfg.URL = e.defaultURL
	}
	return e.open(ctx, cfg)
}

// driverOptions reads a driver's options: it takes each known key from
// opts (with its default when missing) and refuses unknown keys.
type driverOptions struct {
	driver string
	opts   map[string]string
	used   map[string]bool
}

func newDriverOptions(driver string, opts map[string]string) *driverOptions {
	return &driverOptions{driver: driver, opts: opts, used: map[string]bool{}}
}

func (o *driverOptions) get(key, def string) string {
	o.used[key] = true
	if v, ok := o.opts[key]; ok {
		return v
	}
	return def
}

// done fails on the first option no get asked for.
func (o *driverOptions) done() error {
	var unknown []string
	for k := range o.opts {
		if !o.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	var known []string
	for k := range o.used {
		known = append(known, k)
	}
	sort.Strings(known)
	return fmt.Errorf("%s driver: unknown option %q (known: %s)", o.driver, unknown[0], strings.Join(known, ", "))
}
