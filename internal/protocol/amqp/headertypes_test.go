package amqp_test

import (
	"reflect"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/broker"
)

// Every field-table type amqp091-go writes comes back with its type, while
// the stored headers stay text other protocols read.
func TestHeaderTypesRoundTrip(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("typed", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)
	headers := amqp091.Table{
		"string": "text", "int8": int8(-8), "uint8": uint8(8), "int16": int16(-16), "int32": int32(32), "int64": int64(-64),
		"float32": float32(1.5), "float64": 2.25, "bool": true, "time": at, "decimal": amqp091.Decimal{Scale: 2, Value: -1234},
		"bytes": []byte{0, 1, 0xff}, "void": nil,
		"array": []any{"a", int64(1), 2.5, true}, "table": amqp091.Table{"n": int64(7), "s": "x", "nested": amqp091.Table{"b": false}},
		// Nested values keep their types too.
		"deep": []any{[]any{"nested", int32(3)}, amqp091.Decimal{Scale: 2, Value: 1}, amqp091.Table{"t": at, "u": uint8(2)}, []byte("b2"), nil, float32(2.64), int16(-2)},
	}
	publishConfirmed(t, ch, "", "typed", false, amqp091.Publishing{Body: []byte("x"), Headers: headers})

	// Stored: text, and one x-amqp-types header.
	r, err := w.srv.Broker().NewReader("typed", map[int32]int64{0: 0})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.Read(t.Context(), 1<<20, time.Second)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read: %v, %d records", err, len(recs))
	}
	stored := map[string]string{}
	for _, h := range recs[0].Headers {
		stored[h.Key] = string(h.Value)
	}
	for k, v := range map[string]string{"string": "text", "int32": "32", "float64": "2.25", "bool": "true", "decimal": "-12.34",
		"time": "2026-11-22T21:00:00Z", "bytes": "\x00\x01\xff", "array": `["a",1,2.5,true]`,
		"x-amqp-types": `{"array":["S","l","d","t"],"bool":"t","bytes":"x","decimal":"D","deep":[["S","I"],"D",{"t":"T","u":"B"},"x","V","f","s"],"float32":"f","float64":"d","int16":"s","int32":"I","int64":"l","int8":"b","table":{"n":"l","nested":{"b":"t"},"s":"S"},"time":"T","uint8":"B","void":"V"}`} {
		if stored[k] != v {
			t.Errorf("stored %s = %q, want %q", k, stored[k], v)
		}
	}

	d, ok, err := ch.Get("typed", true)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v %v", ok, err)
	}
	// amqp091-go decodes timestamps in the local zone.
	if got, ok := d.Headers["time"].(time.Time); !ok || !got.Equal(at) {
		t.Errorf("header time came back as %#v, want %v", d.Headers["time"], at)
	}
	d.Headers["time"] = at
	if deep, ok := d.Headers["deep"].([]any); ok && len(deep) == 7 {
		if tab, ok := deep[2].(amqp091.Table); ok {
			if got, ok := tab["t"].(time.Time); !ok || !got.Equal(at) {
				t.Errorf("nested timestamp came back as %#v", tab["t"])
			}
			tab["t"] = at
		}
	}
	if !reflect.DeepEqual(d.Headers, headers) {
		for k, v := range headers {
			if !reflect.DeepEqual(d.Headers[k], v) {
				t.Errorf("header %s came back as %#v, want %#v", k, d.Headers[k], v)
			}
		}
		t.Fatalf("headers %#v", d.Headers)
	}

	// A record from another protocol may carry the types header too; a
	// value that does not parse as its type stays a string.
	if _, err := w.srv.Broker().Publish(t.Context(), "typed", []broker.Record{{Value: []byte("y"), Headers: []broker.Header{
		{Key: "n", Value: []byte("5")}, {Key: "bad", Value: []byte("five")},
		{Key: "x-amqp-types", Value: []byte(`{"n":"s","bad":"I"}`)},
	}}}); err != nil {
		t.Fatal(err)
	}
	d, ok, err = ch.Get("typed", true)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v %v", ok, err)
	}
	if want := (amqp091.Table{"n": int16(5), "bad": "five"}); !reflect.DeepEqual(d.Headers, want) {
		t.Fatalf("headers %#v, want %#v", d.Headers, want)
	}
}
