package server

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/mqtt"
)

// brokerCollector reads the state of streams, partitions, shared
// subscriptions, groups and the data directory's disk from the broker at
// each scrape, once the server has opened one, so that no hot path updates
// a map of series: the counters it reports are atomics (storage.Log) or
// fields kept under locks the broker takes anyway (shared subscriptions).
// docs/METRICS.md lists every series.
type brokerCollector struct {
	b       atomic.Pointer[broker.Broker]
	dataDir atomic.Pointer[string]

	// streams and partitions
	appendedRecords, appendedBytes, partitions  *prometheus.Desc
	endOffset, startOffset, partBytes, segments *prometheus.Desc
	// shared subscriptions and queues
	subDepth, subDepthBytes, subInFlight, subWaiting, subDelayed, subConsumers *prometheus.Desc
	subDeadLettered, subDelivered, subRedelivered, subAcked, subNacked         *prometheus.Desc
	subRejected, subTimedOut                                                   *prometheus.Desc
	// MQTT session queues, summed (one per persistent session: per-object
	// series of each would make a scrape of a busy MQTT node tens of
	// thousands of series)
	sessionQueues, sessionDepth, sessionInFlight, sessionBytes *prometheus.Desc
	// groups
	lag, members *prometheus.Desc
	// the data directory's disk
	diskFree, diskFull *prometheus.Desc
}

func newBrokerCollector() *brokerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	sub := []string{"stream", "subscription"}
	part := []string{"stream", "partition"}
	return &brokerCollector{
		appendedRecords: d("weir_stream_appended_records_total", "Offsets (records and transaction markers) appended to the stream since the node started, by every protocol.", "stream"),
		appendedBytes:   d("weir_stream_appended_bytes_total", "Record batch bytes appended to the stream since the node started, as stored.", "stream"),
		partitions:      d("weir_stream_partitions", "Partitions of the stream.", "stream"),
		endOffset:       d("weir_partition_end_offset", "The offset the next record of the partition will get.", part...),
		startOffset:     d("weir_partition_start_offset", "The first offset of the partition still retained.", part...),
		partBytes:       d("weir_partition_bytes", "Bytes of the partition's segment files on disk.", part...),
		segments:        d("weir_partition_segments", "Segment files of the partition.", part...),

		subDepth:        d("weir_subscription_depth", "Records of the shared subscription (or queue) not settled yet, in flight included.", sub...),
		subDepthBytes:   d("weir_subscription_depth_bytes", "Size of those records (key, value and headers).", sub...),
		subInFlight:     d("weir_subscription_in_flight", "Records delivered to a consumer and awaiting acknowledgement.", sub...),
		subWaiting:      d("weir_subscription_waiting", "Records nacked or timed out, waiting for their redelivery backoff.", sub...),
		subDelayed:      d("weir_subscription_delayed", "Records whose deliver-at is in the future.", sub...),
		subConsumers:    d("weir_subscription_consumers", "Consumers attached to the shared subscription.", sub...),
		subDeadLettered: d("weir_subscription_dead_lettered_total", "Records dead-lettered (max deliveries, rejected, expired with a dead-letter stream) since the node started.", sub...),
		subDelivered:    d("weir_subscription_delivered_total", "Deliveries to consumers since the node started, redeliveries included.", sub...),
		subRedelivered:  d("weir_subscription_redelivered_total", "Deliveries of records delivered before (after a nack, a timeout or a restart) since the node started.", sub...),
		subAcked:        d("weir_subscription_acked_total", "Records acknowledged since the node started.", sub...),
		subNacked:       d("weir_subscription_nacked_total", "Records nacked (given back for redelivery) since the node started.", sub...),
		subRejected:     d("weir_subscription_rejected_total", "Records rejected (dead-lettered at once by the consumer) since the node started.", sub...),
		subTimedOut:     d("weir_subscription_ack_timeouts_total", "Deliveries whose ack deadline passed, taking the record back, since the node started.", sub...),

		sessionQueues:   d("weir_mqtt_session_queues", "Queues of persistent MQTT sessions (one each), which the per-stream and per-subscription series leave out."),
		sessionDepth:    d("weir_mqtt_session_queue_depth", "Records of the MQTT session queues not settled yet, in flight included, summed."),
		sessionInFlight: d("weir_mqtt_session_queue_in_flight", "Records of the MQTT session queues sent to their clients and awaiting acknowledgement, summed."),
		sessionBytes:    d("weir_mqtt_session_queue_bytes", "Bytes of the MQTT session queues' segment files on disk, summed."),

		lag:     d("weir_group_lag", "Records of the partition after the group's committed offset.", "group", "stream", "partition"),
		members: d("weir_group_members", "Members of the consumer group (native groups and Kafka classic groups).", "group"),

		diskFree: d("weir_disk_free_bytes", "Bytes available to Weir on the file system of the data directory."),
		diskFull: d("weir_disk_full", "1 while publishes are refused because the disk's free space is below disk-free-min (or a write failed with ENOSPC), else 0."),
	}
}

// set makes the collector read b, whose data is in dataDir.
func (c *brokerCollector) set(b *broker.Broker, dataDir string) {
	c.dataDir.Store(&dataDir)
	c.b.Store(b)
}

// Describe implements prometheus.Collector.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.appendedRecords, c.appendedBytes, c.partitions, c.endOffset, c.startOffset, c.partBytes, c.segments,
		c.subDepth, c.subDepthBytes, c.subInFlight, c.subWaiting, c.subDelayed, c.subConsumers,
		c.subDeadLettered, c.subDelivered, c.subRedelivered, c.subAcked, c.subNacked, c.subRejected, c.subTimedOut,
		c.sessionQueues, c.sessionDepth, c.sessionInFlight, c.sessionBytes,
		c.lag, c.members, c.diskFree, c.diskFull,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b.Load()
	if b == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	var sessions struct{ queues, depth, inFlight, bytes int64 }
	for _, s := range b.ListStreams() {
		name := s.Config.Name
		if mqtt.IsSessionQueue(name) {
			sessions.queues++
			for _, p := range s.Partitions {
				sessions.bytes += p.Bytes
			}
			subs, _ := b.ListSubscriptions(name)
			for _, sub := range subs {
				sessions.depth += sub.Depth
				sessions.inFlight += int64(sub.InFlight)
			}
			continue
		}
		var records, bytes int64
		for _, p := range s.Partitions {
			partition := strconv.Itoa(int(p.Partition))
			records += p.AppendedOffsets
			bytes += p.AppendedBytes
			gauge(c.endOffset, float64(p.EndOffset), name, partition)
			gauge(c.startOffset, float64(p.StartOffset), name, partition)
			gauge(c.partBytes, float64(p.Bytes), name, partition)
			gauge(c.segments, float64(p.Segments), name, partition)
		}
		counter(c.appendedRecords, records, name)
		counter(c.appendedBytes, bytes, name)
		gauge(c.partitions, float64(len(s.Partitions)), name)
		subs, err := b.ListSubscriptions(name)
		if err != nil {
			continue // deleted since it was listed
		}
		for _, sub := range subs {
			l := []string{name, sub.Config.Name}
			gauge(c.subDepth, float64(sub.Depth), l...)
			gauge(c.subDepthBytes, float64(sub.DepthBytes), l...)
			gauge(c.subInFlight, float64(sub.InFlight), l...)
			gauge(c.subWaiting, float64(sub.Waiting), l...)
			gauge(c.subDelayed, float64(sub.Delayed), l...)
			gauge(c.subConsumers, float64(sub.Consumers), l...)
			counter(c.subDeadLettered, sub.DeadLettered, l...)
			counter(c.subDelivered, sub.Delivered, l...)
			counter(c.subRedelivered, sub.Redelivered, l...)
			counter(c.subAcked, sub.Acked, l...)
			counter(c.subNacked, sub.Nacked, l...)
			counter(c.subRejected, sub.Rejected, l...)
			counter(c.subTimedOut, sub.TimedOut, l...)
		}
	}
	gauge(c.sessionQueues, float64(sessions.queues))
	gauge(c.sessionDepth, float64(sessions.depth))
	gauge(c.sessionInFlight, float64(sessions.inFlight))
	gauge(c.sessionBytes, float64(sessions.bytes))
	c.collectGroups(b, gauge)
	disk := b.DiskStatus()
	full := 0.0
	if disk.Full {
		full = 1
	}
	gauge(c.diskFull, full)
	if dir := c.dataDir.Load(); dir != nil {
		// Read now rather than the watermark's last sample, which is
		// not taken when the watermark is off. Without a reading the
		// series is absent rather than failing the scrape.
		if free, err := broker.DirFreeSpace(*dir).FreeBytes(); err == nil {
			gauge(c.diskFree, float64(free))
		}
	}
}

// collectGroups reports the lag of every group with committed offsets and
// the members of the groups that have some.
func (c *brokerCollector) collectGroups(b *broker.Broker, gauge func(*prometheus.Desc, float64, ...string)) {
	members := make(map[string]int)
	for _, g := range b.ListClassicGroups() {
		members[g.Group] = len(g.Members)
	}
	groups, err := b.ListGroups()
	if err != nil {
		return
	}
	for _, g := range groups {
		info, err := b.DescribeGroup(g)
		if err != nil {
			continue // gone since it was listed
		}
		for _, o := range info.Offsets {
			gauge(c.lag, float64(o.Lag), g, o.Stream, strconv.Itoa(int(o.Partition)))
		}
		members[g] += len(info.Members)
	}
	for g, n := range members {
		gauge(c.members, float64(n), g)
	}
}
