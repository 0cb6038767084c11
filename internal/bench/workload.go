// Package bench is the harness behind `weir bench --workload`: workloads
// described in YAML in the style of the OpenMessaging Benchmark, drivers for
// the Weir SDK, Kafka, AMQP 0-9-1 and NATS JetStream behind one interface,
// constant-rate producers that measure latency from the intended send time
// (so a stall is not hidden: no coordinated omission), HdrHistogram
// percentiles, rates and backlog sampled every second, results as JSON, and
// SVG charts.
package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrWorkload is wrapped by every error about a workload file.
var ErrWorkload = errors.New("invalid workload")

// Subscription types.
const (
	// SubscriptionGroup is log semantics: each subscription receives every
	// record; its consumers share the partitions (a Kafka consumer group).
	SubscriptionGroup = "group"
	// SubscriptionShared is queue semantics: the consumers of a
	// subscription compete for its records and acknowledge each one.
	SubscriptionShared = "shared"
)

// Key distributors, as the OpenMessaging Benchmark names them.
const (
	KeyNone       = "NO_KEY"
	KeyRoundRobin = "KEY_ROUND_ROBIN"
	KeyRandomNano = "RANDOM_NANO"
)

// TimestampBytes is the size of the send time every record's value starts
// with (nanoseconds since the Unix epoch, big-endian): a consumer computes
// the end-to-end latency from it.
const TimestampBytes = 8

// Workload is one benchmark scenario. Field names follow the OpenMessaging
// Benchmark's workload files where it has the concept (topics,
// partitionsPerTopic, messageSize, subscriptionsPerTopic, ...); the others
// are Weir's and documented in docs/BENCHMARKS.md.
type Workload struct {
	Name string `yaml:"name" json:"name"`
	// Topics is the number of topics (streams, queues) to create.
	Topics int `yaml:"topics" json:"topics"`
	// PartitionsPerTopic is each topic's partition count (drivers whose
	// system has no partitions ignore it and say so in the result).
	PartitionsPerTopic int `yaml:"partitionsPerTopic" json:"partitionsPerTopic"`
	// MessageSize is the size of each record's value in bytes, at least
	// TimestampBytes.
	MessageSize int `yaml:"messageSize" json:"messageSize"`
	// RandomBytesRatio is the share of each value that is random (the rest
	// is zeros, which compresses): 0 to 1; default 1.
	RandomBytesRatio *float64 `yaml:"randomBytesRatio" json:"randomBytesRatio"`
	// KeyDistributor is NO_KEY (default), KEY_ROUND_ROBIN or RANDOM_NANO.
	KeyDistributor string `yaml:"keyDistributor" json:"keyDistributor"`
	// SubscriptionsPerTopic is the number of subscriptions of each topic;
	// each receives every record.
	SubscriptionsPerTopic int `yaml:"subscriptionsPerTopic" json:"subscriptionsPerTopic"`
	// SubscriptionType is group (default) or shared.
	SubscriptionType string `yaml:"subscriptionType" json:"subscriptionType"`
	// ConsumerPerSubscription is the number of consumers of each
	// subscription of each topic (0: produce only).
	ConsumerPerSubscription int `yaml:"consumerPerSubscription" json:"consumerPerSubscription"`
	// ProducersPerTopic is the number of producers of each topic.
	ProducersPerTopic int `yaml:"producersPerTopic" json:"producersPerTopic"`
	// Producers, when set, replaces ProducersPerTopic with a total: each of
	// them publishes to its share of the topics in turn (for workloads of
	// many topics with light traffic each).
	Producers int `yaml:"producers" json:"producers"`
	// ProducerRate is the target of all producers together in records/s,
	// or "max" (each producer as fast as its in-flight window allows).
	ProducerRate Rate `yaml:"producerRate" json:"producerRate"`
	// MaxOutstanding is each producer's window of records sent and not yet
	// acknowledged (default 1000).
	MaxOutstanding int `yaml:"maxOutstanding" json:"maxOutstanding"`
	// Prefetch is how many records each consumer holds unacknowledged
	// (default 100; shared subscriptions, AMQP and NATS consumers).
	Prefetch int `yaml:"prefetch" json:"prefetch"`
	// Duration is the measured time, after Warmup.
	Duration Duration `yaml:"duration" json:"duration"`
	// Warmup runs the same load first without counting it.
	Warmup Duration `yaml:"warmup" json:"warmup"`
	// BacklogRecords, when set, turns the run into a backlog drain: the
	// producers publish that many records in all at full speed with no
	// consumer running, then the consumers start and the run measures how
	// fast they drain it. Duration, Warmup and ProducerRate do not apply.
	BacklogRecords int64 `yaml:"backlogRecords" json:"backlogRecords"`
}

// Rate is a records/s target; 0 means as fast as possible ("max").
type Rate float64

// Max reports whether the rate is unbounded.
func (r Rate) Max() bool { return r == 0 }

func (r Rate) String() string {
	if r.Max() {
		return "max"
	}
	return strconv.FormatFloat(float64(r), 'f', -1, 64)
}

// UnmarshalYAML takes "max" or a positive number.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if strings.EqualFold(n.Value, "max") {
		*r = 0
		return nil
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return fmt.Errorf("line %d: producerRate %q: want \"max\" or a positive number of records per second", n.Line, n.Value)
	}
	*r = Rate(v)
	return nil
}

// MarshalYAML writes the form UnmarshalYAML reads.
func (r Rate) MarshalYAML() (any, error) { return r.String(), nil }

// MarshalJSON writes "max" or the number.
func (r Rate) MarshalJSON() ([]byte, error) {
	if r.Max() {
		return []byte(`"max"`), nil
	}
	return []byte(r.String()), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Rate) UnmarshalJSON(b []byte) error {
	if string(b) == `"max"` {
		*r = 0
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || v < 0 {
		return fmt.Errorf("producerRate %s: want \"max\" or a number", b)
	}
	*r = Rate(v)
	return nil
}

// Duration is a time.Duration written as "90s", "2m"; a bare number is
// seconds.
type Duration time.Duration

// UnmarshalYAML takes a Go duration or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if v, err := strconv.ParseFloat(n.Value, 64); err == nil && v >= 0 {
		*d = Duration(v * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (write 30s, 2m or a number of seconds)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the form UnmarshalYAML reads.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalJSON writes seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(time.Duration(d).Seconds(), 'f', -1, 64)), nil
}

// UnmarshalJSON reads seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration %s: want seconds", b)
	}
	*d = Duration(v * float64(time.Second))
	return nil
}

// LoadWorkload reads a workload file, applies the overrides (each
// "field=value", with the field's YAML name: "duration=5s",
// "backlogRecords=100000"), and validates the result.
func LoadWorkload(path string, overrides ...string) (*Workload, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w, err := ParseWorkload(data, overrides...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// ParseWorkload parses and validates a workload; see LoadWorkload.
func ParseWorkload(data []byte, overrides ...string) (*Workload, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWorkload, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrWorkload)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: want a mapping of fields", ErrWorkload, root.Line)
	}
	for _, o := range overrides {
		if err := override(root, o); err != nil {
			return nil, err
		}
	}
	var w Workload
	dec := yaml.NewDecoder(bytes.NewReader(mustMarshal(root)))
	dec.KnownFields(true)
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrWorkload, nameFields(root, err))
	}
	w.applyDefaults()
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return &w, nil
}

// nameFields puts the field's name before each "line N: ..." of a decoding
// error (the lines are those of the re-marshalled document, so the names
// say more than the numbers).
func nameFields(root *yaml.Node, err error) string {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return err.Error()
	}
	reparsed := root
	var doc yaml.Node
	if yaml.Unmarshal(mustMarshal(root), &doc) == nil && len(doc.Content) > 0 {
		reparsed = doc.Content[0]
	}
	var msgs []string
	for _, e := range typeErr.Errors {
		msg := e
		var line int
		if _, scanErr := fmt.Sscanf(e, "line %d:", &line); scanErr == nil {
			for i := 0; i+1 < len(reparsed.Content); i += 2 {
				if k := reparsed.Content[i]; k.Line == line {
					msg = k.Value + ": " + strings.TrimSpace(e[strings.Index(e, ":")+1:])
				}
			}
		}
		msgs = append(msgs, msg)
	}
	return strings.Join(msgs, "; ")
}

func mustMarshal(n *yaml.Node) []byte {
	b, err := yaml.Marshal(n)
	if err != nil { // a node that was parsed always marshals
		panic(err)
	}
	return b
}

// override sets field=value in the mapping node, adding the field if the
// file lacks it.
func override(root *yaml.Node, o string) error {
	field, value, ok := strings.Cut(o, "=")
	field = strings.TrimSpace(field)
	if !ok || field == "" {
		return fmt.Errorf("%w: override %q: want field=value", ErrWorkload, o)
	}
	var v yaml.Node
	if err := yaml.Unmarshal([]byte(value), &v); err != nil || len(v.Content) == 0 || v.Content[0].Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: override %q: the value must be a single scalar", ErrWorkload, o)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == field {
			root.Content[i+1] = v.Content[0]
			return nil
		}
	}
	root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: field}, v.Content[0])
	return nil
}

func (w *Workload) applyDefaults() {
	if w.Topics == 0 {
		w.Topics = 1
	}
	if w.PartitionsPerTopic == 0 {
		w.PartitionsPerTopic = 1
	}
	if w.RandomBytesRatio == nil {
		one := 1.0
		w.RandomBytesRatio = &one
	}
	if w.KeyDistributor == "" {
		w.KeyDistributor = KeyNone
	}
	if w.SubscriptionType == "" {
		w.SubscriptionType = SubscriptionGroup
	}
	if w.MaxOutstanding == 0 {
		w.MaxOutstanding = 1000
	}
	if w.Prefetch == 0 {
		w.Prefetch = 100
	}
}

// Validate checks every field and names the first bad one.
func (w *Workload) Validate() error {
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrWorkload, field, fmt.Sprintf(format, args...))
	}
	switch {
	case w.Name == "":
		return bad("name", "missing")
	case w.Topics < 1:
		return bad("topics", "%d: want at least 1", w.Topics)
	case w.PartitionsPerTopic < 1:
		return bad("partitionsPerTopic", "%d: want at least 1", w.PartitionsPerTopic)
	case w.MessageSize < TimestampBytes:
		return bad("messageSize", "%d: want at least %d (each record carries its send time)", w.MessageSize, TimestampBytes)
	case *w.RandomBytesRatio < 0 || *w.RandomBytesRatio > 1:
		return bad("randomBytesRatio", "%v: want a share between 0 and 1", *w.RandomBytesRatio)
	case w.KeyDistributor != KeyNone && w.KeyDistributor != KeyRoundRobin && w.KeyDistributor != KeyRandomNano:
		return bad("keyDistributor", "%q: want %s, %s or %s", w.KeyDistributor, KeyNone, KeyRoundRobin, KeyRandomNano)
	case w.SubscriptionsPerTopic < 0:
		return bad("subscriptionsPerTopic", "%d is negative", w.SubscriptionsPerTopic)
	case w.SubscriptionType != SubscriptionGroup && w.SubscriptionType != SubscriptionShared:
		return bad("subscriptionType", "%q: want %s or %s", w.SubscriptionType, SubscriptionGroup, SubscriptionShared)
	case w.ConsumerPerSubscription < 0:
		return bad("consumerPerSubscription", "%d is negative", w.ConsumerPerSubscription)
	case w.ConsumerPerSubscription > 0 && w.SubscriptionsPerTopic == 0:
		return bad("consumerPerSubscription", "%d consumers but subscriptionsPerTopic is 0", w.ConsumerPerSubscription)
	case w.ProducersPerTopic < 0:
		return bad("producersPerTopic", "%d is negative", w.ProducersPerTopic)
	case w.Producers < 0:
		return bad("producers", "%d is negative", w.Producers)
	case w.Producers > 0 && w.ProducersPerTopic > 0:
		return bad("producers", "set either producers or producersPerTopic, not both")
	case w.Producers == 0 && w.ProducersPerTopic == 0:
		return bad("producersPerTopic", "missing: want at least 1 (or producers, a total)")
	case w.MaxOutstanding < 1:
		return bad("maxOutstanding", "%d: want at least 1", w.MaxOutstanding)
	case w.Prefetch < 1:
		return bad("prefetch", "%d: want at least 1", w.Prefetch)
	case w.BacklogRecords < 0:
		return bad("backlogRecords", "%d is negative", w.BacklogRecords)
	case w.BacklogRecords > 0 && w.ConsumerPerSubscription == 0:
		return bad("backlogRecords", "a backlog drain needs consumers (consumerPerSubscription)")
	case w.BacklogRecords == 0 && w.Duration <= 0:
		return bad("duration", "missing: want the measured time, e.g. 60s")
	}
	return nil
}

// ProducerCount is the number of producers the workload runs.
func (w *Workload) ProducerCount() int {
	if w.Producers > 0 {
		return w.Producers
	}
	return w.ProducersPerTopic * w.Topics
}

// producerTopics returns the topic indexes producer p publishes to, in turn.
func (w *Workload) producerTopics(p int) []int {
	if w.Producers == 0 {
		return []int{p % w.Topics}
	}
	var ts []int
	for t := p; t < w.Topics; t += w.Producers {
		ts = append(ts, t)
	}
	if len(ts) == 0 { // more producers than topics
		ts = []int{p % w.Topics}
	}
	return ts
}
