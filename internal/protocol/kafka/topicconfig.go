package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// errInvalidConfig is a topic configuration Weir cannot apply.
var errInvalidConfig = errors.New("invalid topic configuration")

// ignoredTopicConfigs are Kafka topic configurations that have no meaning
// on a single Weir node (replication, placement, tuning of Kafka's own log);
// CreateTopics accepts and ignores them rather than failing tools that set
// them.
var ignoredTopicConfigs = map[string]bool{
	"min.insync.replicas": true, "unclean.leader.election.enable": true, "compression.type": true,
	"message.timestamp.type": true, "flush.messages": true, "flush.ms": true, "index.interval.bytes": true,
	"segment.index.bytes": true, "segment.jitter.ms": true, "preallocate": true, "file.delete.delay.ms": true,
	"message.downconversion.enable": true, "follower.replication.throttled.replicas": true,
	"leader.replication.throttled.replicas": true, "max.compaction.lag.ms": true, "min.compaction.lag.ms": true,
	"min.cleanable.dirty.ratio": true, "message.timestamp.difference.max.ms": true, "max.message.bytes": true,
	"message.timestamp.before.max.ms": true, "message.timestamp.after.max.ms": true,
	"delete.retention.ms": true, "local.retention.ms": true, "local.retention.bytes": true, "remote.storage.enable": true,
}

// applyTopicConfig sets one Kafka topic configuration on cfg.
func applyTopicConfig(cfg *broker.StreamConfig, name string, value *string) error {
	if value == nil {
		return nil // the default
	}
	v := *value
	parseInt := func() (int64, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %s=%q is not a number", errInvalidConfig, name, v)
		}
		return n, nil
	}
	switch name {
	case "retention.ms":
		n, err := parseInt()
		if err != nil {
			return err
		}
		if n < 0 {
			n = 0 // -1: keep forever
		}
		cfg.RetentionAge = time.Duration(n) * time.Millisecond
	case "retention.bytes":
		n, err := parseInt()
		if err != nil {
			return err
		}
		cfg.RetentionBytes = max(n, 0)
	case "segment.bytes":
		n, err := parseInt()
		if err != nil {
			return err
		}
		cfg.SegmentBytes = n
	case "cleanup.policy":
		switch v {
		case "delete":
			cfg.Compacted = false
		case "compact":
			cfg.Compacted = true
		default:
			return fmt.Errorf("%w: cleanup.policy %q (Weir supports delete or compact)", errInvalidConfig, v)
		}
	default:
		if !ignoredTopicConfigs[name] {
			return fmt.Errorf("%w: unknown topic configuration %q", errInvalidConfig, name)
		}
	}
	return nil
}

// topicConfigs are a stream's settings as Kafka topic configurations, in
// the order DescribeConfigs lists them.
func topicConfigs(info broker.StreamInfo, maxRecordBytes int) [][2]string {
	policy := "delete"
	if info.Config.Compacted {
		policy = "compact"
	}
	retentionMs := int64(-1)
	if info.Config.RetentionAge > 0 {
		retentionMs = info.Config.RetentionAge.Milliseconds()
	}
	retentionBytes := int64(-1)
	if info.Config.RetentionBytes > 0 {
		retentionBytes = info.Config.RetentionBytes
	}
	segment := info.Config.SegmentBytes
	if segment == 0 {
		segment = 1 << 30
	}
	return [][2]string{
		{"cleanup.policy", policy},
		{"retention.ms", strconv.FormatInt(retentionMs, 10)},
		{"retention.bytes", strconv.FormatInt(retentionBytes, 10)},
		{"segment.bytes", strconv.FormatInt(segment, 10)},
		{"max.message.bytes", strconv.Itoa(maxRecordBytes + 1024)},
		{"message.timestamp.type", "CreateTime"},
		{"min.insync.replicas", "1"},
	}
}
