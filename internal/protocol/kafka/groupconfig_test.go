package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeGroupConfig returns a group's configurations by name.
func describeGroupConfig(t *testing.T, ctx context.Context, cl *kgo.Client, group string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("DescribeConfigs GROUP %s: %v %+v", group, err, resp)
	}
	out := make(map[string]kmsg.DescribeConfigsResponseResourceConfig)
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = c
	}
	return out
}

// alterGroupConfig sends one IncrementalAlterConfigs resource and returns
// its error code.
func alterGroupConfig(t *testing.T, ctx context.Context, cl *kgo.Client, typ kmsg.ConfigResourceType, name string, ops ...kmsg.IncrementalAlterConfigsRequestResourceConfig) int16 {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName, r.Configs = typ, name, ops
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Resources) != 1 {
		t.Fatalf("IncrementalAlterConfigs: %v %+v", err, resp)
	}
	return resp.Resources[0].ErrorCode
}

func setConfig(name, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = name, kmsg.IncrementalAlterConfigOpSet, &value
	return c
}

// TestGroupConfigs: a share group is told, over Kafka, to start at the
// earliest offset and to lock records for 15 s; its franz-go share
// consumer then reads the records produced before it joined, and the
// shared subscription it creates has that lock. Bad values, the KIP-848
// consumer configurations and other resource types are refused; the
// configuration survives a restart and DELETE returns it to the default.
func TestGroupConfigs(t *testing.T) {
	dir := t.TempDir()
	w := startWeirIn(t, dir)
	ctx := testContext(t)
	admin := w.client(t)
	if _, err := w.admin(t).CreateTopic(ctx, 2, 1, nil, "gc-t"); err != nil {
		t.Fatal(err)
	}
	produceValues(t, w.client(t), "gc-t", 0, 20)
	before := describeGroupConfig(t, ctx, admin, "gc-g")
	if c := before["share.auto.offset.reset"]; c.Value == nil || *c.Value != "latest" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("default share.auto.offset.reset: %+v", c)
	}
	for _, bad := range []kmsg.IncrementalAlterConfigsRequestResourceConfig{
		setConfig("share.auto.offset.reset", "sometimes"),
		setConfig("share.record.lock.duration.ms", "ten"),
		setConfig("consumer.session.timeout.ms", "45000"),
		setConfig("no.such.config", "1"),
	} {
		if code := alterGroupConfig(t, ctx, admin, kmsg.ConfigResourceTypeGroupConfig, "gc-g", setConfig("share.record.lock.duration.ms", "20000"), bad); code != kerr.InvalidConfig.Code {
			t.Errorf("%s=%s: code %d, want INVALID_CONFIG", bad.Name, *bad.Value, code)
		}
	}
	if code := alterGroupConfig(t, ctx, admin, kmsg.ConfigResourceTypeTopic, "gc-t", setConfig("retention.ms", "1")); code != kerr.InvalidRequest.Code {
		t.Errorf("altering a topic: code %d, want INVALID_REQUEST", code)
	}
	if c := describeGroupConfig(t, ctx, admin, "gc-g")["share.record.lock.duration.ms"]; c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("a refused change was partly stored: %+v", c)
	}
	if code := alterGroupConfig(t, ctx, admin, kmsg.ConfigResourceTypeGroupConfig, "gc-g",
		setConfig("share.auto.offset.reset", "earliest"), setConfig("share.record.lock.duration.ms", "15000")); code != 0 {
		t.Fatalf("alter: code %d", code)
	}
	after := describeGroupConfig(t, ctx, admin, "gc-g")
	if c := after["share.auto.offset.reset"]; *c.Value != "earliest" || c.Source != kmsg.ConfigSourceGroupConfig {
		t.Errorf("share.auto.offset.reset after SET: %+v", c)
	}

	// The share consumer reads what was produced before it joined.
	sc := w.shareConsumer(t, "gc-g", "gc-t")
	got := 0
	for got < 20 {
		fs := sc.PollRecords(ctx, 100)
		if err := ctx.Err(); err != nil {
			t.Fatalf("%d of 20 records read: %v", got, err)
		}
		got += len(fs.Records())
	}
	info, err := w.srv.Broker().DescribeSubscription("gc-t", "gc-g")
	if err != nil || info.Config.AckTimeout != 15*time.Second {
		t.Errorf("subscription: %v, ack timeout %v, want 15s", err, info.Config.AckTimeout)
	}
	sc.Close()

	// The configuration survives a restart; DELETE returns to the default.
	w.stop(t)
	w = startWeirIn(t, dir)
	admin = w.client(t)
	if c := describeGroupConfig(t, ctx, admin, "gc-g")["share.record.lock.duration.ms"]; *c.Value != "15000" {
		t.Errorf("after a restart: %+v", c)
	}
	del := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	del.Name, del.Op = "share.auto.offset.reset", kmsg.IncrementalAlterConfigOpDelete
	if code := alterGroupConfig(t, ctx, admin, kmsg.ConfigResourceTypeGroupConfig, "gc-g", del); code != 0 {
		t.Fatalf("delete: code %d", code)
	}
	if c := describeGroupConfig(t, ctx, admin, "gc-g")["share.auto.offset.reset"]; *c.Value != "latest" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("after DELETE: %+v", c)
	}
}
