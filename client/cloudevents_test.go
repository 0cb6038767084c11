package weir_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

func sampleEvent() weir.CloudEvent {
	return weir.CloudEvent{
		ID:              "A234-1234-1234",
		Source:          "/orders/service",
		Type:            "com.example.order.paid",
		Subject:         "order-7",
		Time:            time.Date(2026, 4, 5, 17, 31, 0, 250_000_000, time.UTC),
		DataContentType: "application/json",
		DataSchema:      "https://schemas.example.com/order-paid.json",
		Extensions:      map[string]string{"partitionkey": "customer-42", "comexampleext": "v"},
		Data:            []byte(`{"total":42}`),
	}
}

// TestCloudEventRecord: the binary-mode mapping of every attribute, and the
// way back.
func TestCloudEventRecord(t *testing.T) {
	e := sampleEvent()
	rec, err := e.Record()
	if err != nil {
		t.Fatal(err)
	}
	want := []weir.Header{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("A234-1234-1234")},
		{Key: "ce_source", Value: []byte("/orders/service")},
		{Key: "ce_type", Value: []byte("com.example.order.paid")},
		{Key: "ce_subject", Value: []byte("order-7")},
		{Key: "ce_time", Value: []byte("2026-04-05T17:31:00.25Z")},
		{Key: "ce_dataschema", Value: []byte("https://schemas.example.com/order-paid.json")},
		{Key: "ce_comexampleext", Value: []byte("v")},
		{Key: "ce_partitionkey", Value: []byte("customer-42")},
		{Key: "content-type", Value: []byte("application/json")},
		{Key: "message-id", Value: []byte("/orders/service A234-1234-1234")},
	}
	if !reflect.DeepEqual(rec.Headers, want) {
		t.Errorf("headers:\n%s\nwant:\n%s", formatHeaders(rec.Headers), formatHeaders(want))
	}
	if string(rec.Key) != "customer-42" || string(rec.Value) != `{"total":42}` {
		t.Errorf("key %q, value %q", rec.Key, rec.Value)
	}
	back, err := rec.CloudEvent()
	if err != nil {
		t.Fatal(err)
	}
	e.SpecVersion = "1.0"
	if !back.Time.Equal(e.Time) {
		t.Errorf("time %v, want %v", back.Time, e.Time)
	}
	back.Time = e.Time
	if !reflect.DeepEqual(*back, e) {
		t.Errorf("read back %+v, want %+v", *back, e)
	}

	// The minimal event: no key, no optional headers, no value.
	rec, err = (&weir.CloudEvent{ID: "1", Source: "urn:x", Type: "t"}).Record()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key != nil || rec.Value != nil || len(rec.Headers) != 5 {
		t.Errorf("minimal event's record: %+v", rec)
	}
}

func formatHeaders(hs []weir.Header) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "  %s: %s\n", h.Key, h.Value)
	}
	return b.String()
}

// TestCloudEventValidation: what an event may not be, and the errors that
// say so.
func TestCloudEventValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*weir.CloudEvent)
		error string
	}{
		{"no id", func(e *weir.CloudEvent) { e.ID = "" }, "missing required attribute id"},
		{"nothing", func(e *weir.CloudEvent) { *e = weir.CloudEvent{} }, "missing required attributes id, source, type"},
		{"version", func(e *weir.CloudEvent) { e.SpecVersion = "0.3" }, `specversion "0.3" is not 1.0`},
		{"source", func(e *weir.CloudEvent) { e.Source = "http://[::1" }, "is not a URI reference"},
		{"schema", func(e *weir.CloudEvent) { e.DataSchema = "relative/path" }, "not an absolute URI"},
		{"content type", func(e *weir.CloudEvent) { e.DataContentType = "json" }, "not a media type"},
		{"extension name", func(e *weir.CloudEvent) { e.Extensions = map[string]string{"Traceparent": "x"} }, `extension name "Traceparent"`},
		{"core name", func(e *weir.CloudEvent) { e.Extensions = map[string]string{"subject": "x"} }, `extension "subject" has the name of a core attribute`},
		{"utf-8", func(e *weir.CloudEvent) { e.Subject = "\xff" }, "subject is not UTF-8"},
	} {
		e := sampleEvent()
		tc.edit(&e)
		err := e.Validate()
		if !errors.Is(err, weir.ErrInvalidCloudEvent) || !strings.Contains(err.Error(), tc.error) {
			t.Errorf("%s: %v, want ErrInvalidCloudEvent saying %q", tc.name, err, tc.error)
		}
		if _, rerr := e.Record(); rerr == nil || rerr.Error() != err.Error() {
			t.Errorf("%s: Record() = %v, want the error of Validate", tc.name, rerr)
		}
	}
	if err := (&weir.CloudEvent{ID: "1", Source: "s", Type: "t"}).Validate(); err != nil {
		t.Errorf("a minimal event: %v", err)
	}
}

// TestCloudEventRead: records written by others, in binary and structured
// mode, good and bad.
func TestCloudEventRead(t *testing.T) {
	h := func(kv ...string) []weir.Header {
		var hs []weir.Header
		for i := 0; i < len(kv); i += 2 {
			hs = append(hs, weir.Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return hs
	}
	structured := func(json string) weir.Record {
		return weir.Record{Value: []byte(json), Headers: h("content-type", "application/cloudevents+json; charset=UTF-8")}
	}
	for _, tc := range []struct {
		name  string
		rec   weir.Record
		want  *weir.CloudEvent
		error string
	}{
		{
			name: "binary",
			rec: weir.Record{Value: []byte("<a/>"), Headers: h("ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s",
				"ce_type", "t", "ce_time", "2018-04-05T03:56:24+02:00", "Content-Type", "application/xml", "ce_traceparent", "tp", "other", "x")},
			want: &weir.CloudEvent{SpecVersion: "1.0", ID: "1", Source: "/s", Type: "t",
				Time: time.Date(2018, 4, 5, 1, 56, 24, 0, time.UTC), DataContentType: "application/xml",
				Extensions: map[string]string{"traceparent": "tp"}, Data: []byte("<a/>")},
		},
		{
			name:  "binary without specversion",
			rec:   weir.Record{Headers: h("ce_id", "1", "ce_type", "t")},
			error: "missing required attributes specversion, source",
		},
		{
			name:  "binary with a bad time",
			rec:   weir.Record{Headers: h("ce_specversion", "1.0", "ce_id", "1", "ce_source", "s", "ce_type", "t", "ce_time", "yesterday")},
			error: `time "yesterday" is not an RFC 3339 timestamp`,
		},
		{
			name:  "not an event",
			rec:   weir.Record{Value: []byte("hello"), Headers: h("content-type", "text/plain")},
			error: "no ce_ headers",
		},
		{
			name: "structured, JSON data",
			rec: structured(`{"specversion":"1.0","id":"C1","source":"/ctx","type":"t","subject":null,
				"datacontenttype":"application/json","comexampleothervalue":5,"flag":true,"data":{"a":[1,2]}}`),
			want: &weir.CloudEvent{SpecVersion: "1.0", ID: "C1", Source: "/ctx", Type: "t", DataContentType: "application/json",
				Extensions: map[string]string{"comexampleothervalue": "5", "flag": "true"}, Data: []byte(`{"a":[1,2]}`)},
		},
		{
			name: "structured, implied JSON",
			rec:  structured(`{"specversion":"1.0","id":"D1","source":"/ctx","type":"t","data":"I'm just a string"}`),
			want: &weir.CloudEvent{SpecVersion: "1.0", ID: "D1", Source: "/ctx", Type: "t", DataContentType: "application/json",
				Data: []byte(`"I'm just a string"`)},
		},
		{
			name: "structured, text data",
			rec:  structured(`{"specversion":"1.0","id":"B1","source":"/ctx","type":"t","datacontenttype":"application/xml","data":"<much wow=\"xml\"/>"}`),
			want: &weir.CloudEvent{SpecVersion: "1.0", ID: "B1", Source: "/ctx", Type: "t", DataContentType: "application/xml",
				Data: []byte(`<much wow="xml"/>`)},
		},
		{
			name: "structured, binary data",
			rec: structured(`{"specversion":"1.0","id":"A1","source":"/ctx","type":"t","time":"2018-04-05T17:31:00Z",
				"datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`),
			want: &weir.CloudEvent{SpecVersion: "1.0", ID: "A1", Source: "/ctx", Type: "t", Time: time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC),
				DataContentType: "application/octet-stream", Data: []byte{0, 1, 2, 255}},
		},
		{
			name:  "structured, missing type",
			rec:   structured(`{"specversion":"1.0","id":"A1","source":"/ctx"}`),
			error: "missing required attribute type",
		},
		{
			name:  "structured, bad members",
			rec:   structured(`{"specversion":"1.0","id":7,"source":"/ctx","type":"t","ext":{"a":1},"data":1,"data_base64":"AA=="}`),
			error: `id is not a JSON string; both data and data_base64; extension "ext" is not a string, number or boolean`,
		},
		{
			name:  "structured, not JSON",
			rec:   structured(`<event/>`),
			error: "structured mode: invalid character",
		},
		{
			name:  "structured, another format",
			rec:   weir.Record{Value: []byte{1}, Headers: h("content-type", "application/cloudevents+avro")},
			error: "structured mode in application/cloudevents+avro",
		},
	} {
		got, err := tc.rec.CloudEvent()
		if tc.error != "" {
			if !errors.Is(err, weir.ErrInvalidCloudEvent) || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: %v, want ErrInvalidCloudEvent saying %q", tc.name, err, tc.error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !got.Time.Equal(tc.want.Time) {
			t.Errorf("%s: time %v, want %v", tc.name, got.Time, tc.want.Time)
		}
		got.Time = tc.want.Time
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

// TestCloudEventsEndToEnd: events published with PublishEvents and a
// Producer land in their partition key's partition, an event published
// twice is stored once, and a group consumer reads them back whole.
func TestCloudEventsEndToEnd(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "events", 4)
	e1 := sampleEvent()
	e2 := weir.CloudEvent{ID: "2", Source: "/orders/service", Type: "com.example.order.shipped",
		Extensions: map[string]string{"partitionkey": "customer-42"}, Data: []byte("shipped")}
	res, err := c.PublishEvents(ctx, "events", e1, e2)
	if err != nil {
		t.Fatal(err)
	}
	keyed, err := c.Publish(ctx, "events", weir.Record{Key: []byte("customer-42"), Value: []byte("not an event")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Partition != keyed[0].Partition || res[1].Partition != keyed[0].Partition {
		t.Errorf("events in partitions %d and %d, their partition key's is %d", res[0].Partition, res[1].Partition, keyed[0].Partition)
	}
	again, err := c.PublishEvents(ctx, "events", e1)
	if err != nil || !again[0].Duplicate || again[0].Offset != res[0].Offset {
		t.Errorf("the same event again: %+v, %v; want a duplicate of offset %d", again, err, res[0].Offset)
	}
	if _, err := c.PublishEvents(ctx, "events", e2, weir.CloudEvent{ID: "3", Type: "t"}); !errors.Is(err, weir.ErrInvalidCloudEvent) ||
		!strings.Contains(err.Error(), "event 1: ") || !strings.Contains(err.Error(), "missing required attribute source") {
		t.Errorf("publishing an event without source: %v", err)
	}
	p := c.NewProducer("events")
	e3 := weir.CloudEvent{ID: "3", Source: "/billing", Type: "com.example.invoice", Time: time.Now().UTC()}
	f := make(chan error, 2)
	p.SendEvent(ctx, e3, func(_ weir.PublishResult, err error) { f <- err })
	p.SendEvent(ctx, weir.CloudEvent{ID: "4"}, func(_ weir.PublishResult, err error) { f <- err })
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err1, err2 := <-f, <-f; err1 != nil && err2 != nil || err1 == nil && err2 == nil {
		t.Errorf("SendEvent of a good and a bad event: %v and %v", err1, err2)
	}

	var mu sync.Mutex
	got := make(map[string]*weir.CloudEvent)
	cons, err := c.Consume(ctx, "events", weir.CloudEventHandler(func(_ context.Context, e *weir.CloudEvent, m *weir.Message) error {
		mu.Lock()
		got[e.ID] = e
		mu.Unlock()
		return nil
	}), weir.Group("audit"), weir.Start(weir.Earliest()), weir.Filter(`"ce_id" in headers`))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	eventually(t, 10*time.Second, "three events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	defer mu.Unlock()
	e1.SpecVersion = "1.0"
	if g := got["A234-1234-1234"]; g == nil || !g.Time.Equal(e1.Time) || g.Subject != e1.Subject || !reflect.DeepEqual(g.Extensions, e1.Extensions) ||
		string(g.Data) != string(e1.Data) || g.DataSchema != e1.DataSchema {
		t.Errorf("event 1 read as %+v, want %+v", g, e1)
	}
	if g := got["3"]; g == nil || !g.Time.Equal(e3.Time) || g.Source != "/billing" {
		t.Errorf("event 3 read as %+v", g)
	}

	// Without the filter, the record that is no event stops a group
	// consumer, which does not commit past it.
	strict, err := c.Consume(ctx, "events", weir.CloudEventHandler(func(context.Context, *weir.CloudEvent, *weir.Message) error { return nil }),
		weir.Group("strict"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	if err := strict.Wait(); !errors.Is(err, weir.ErrInvalidCloudEvent) || !strings.Contains(err.Error(), fmt.Sprintf("events/%d@%d", keyed[0].Partition, keyed[0].Offset)) {
		t.Errorf("the strict consumer stopped with %v, want ErrInvalidCloudEvent naming the record", err)
	}
}

// TestCloudEventsShared: in shared mode, CloudEventHandler dead-letters a
// record that is not a CloudEvent at once, and hands the others on; a
// structured-mode event is read too.
func TestCloudEventsShared(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "inbox", Subscription: weir.SubscriptionConfig{MaxDeliveries: 5}})
	var mu sync.Mutex
	var types []string
	cons, err := c.Consume(ctx, "inbox", weir.CloudEventHandler(func(_ context.Context, e *weir.CloudEvent, m *weir.Message) error {
		mu.Lock()
		types = append(types, e.Type)
		mu.Unlock()
		return nil
	}), weir.Shared(""))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	if _, err := c.PublishEvents(ctx, "inbox", weir.CloudEvent{ID: "1", Source: "/a", Type: "binary"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Publish(ctx, "inbox",
		weir.Record{Value: []byte("plain text")},
		weir.Record{Value: []byte(`{"specversion":"1.0","id":"2","source":"/a","type":"structured","data":{}}`),
			Headers: []weir.Header{{Key: weir.HeaderContentType, Value: []byte(weir.CloudEventsJSON)}}})
	if err != nil {
		t.Fatal(err)
	}
	info := waitDepth(t, c, "inbox", "inbox", 0)
	if info.DeadLettered != 1 {
		t.Errorf("%d dead-lettered, want 1", info.DeadLettered)
	}
	dead, err := c.Fetch(ctx, "inbox.dlq", 0, 0, 0, 0)
	if err != nil || len(dead.Records) != 1 {
		t.Fatalf("dead letters: %+v, %v", dead, err)
	}
	reason, _ := dead.Records[0].Header(weir.HeaderDeadLetterReason)
	lastError, _ := dead.Records[0].Header(weir.HeaderLastError)
	if string(reason) != weir.ReasonRejected || !strings.Contains(string(lastError), "no ce_ headers") {
		t.Errorf("dead letter reason %q, error %q", reason, lastError)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(types) != "[binary structured]" {
		t.Errorf("handled %v", types)
	}
}
