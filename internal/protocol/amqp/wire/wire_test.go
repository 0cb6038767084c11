package wire

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestMethodRoundTrip(t *testing.T) {
	tests := []Method{
		&ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: Table{"product": "Weir", "capabilities": Table{"publisher_confirms": true}}, Mechanisms: []byte("PLAIN AMQPLAIN"), Locales: []byte("en_US")},
		&ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
		&ConnectionClose{ReplyCode: 320, ReplyText: "CONNECTION_FORCED", ClassID: 0, MethodID: 0},
		&ExchangeDeclare{Exchange: "logs", Type: "topic", Durable: true, Internal: true, NoWait: true, Arguments: Table{"alternate-exchange": "ae"}},
		&QueueDeclare{Queue: "q", Passive: false, Durable: true, Exclusive: true, AutoDelete: true, NoWait: false, Arguments: Table{"x-message-ttl": int32(1000)}},
		&BasicPublish{Exchange: "amq.topic", RoutingKey: "a.b", Mandatory: true, Immediate: false},
		&BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1 << 40, Redelivered: true, Exchange: "", RoutingKey: "q"},
		&BasicNack{DeliveryTag: 7, Multiple: true, Requeue: true},
		&ConfirmSelect{NoWait: true},
		&ExchangeUnbind{Destination: "d", Source: "s", RoutingKey: "k"},
	}
	for _, m := range tests {
		t.Run(m.MethodName(), func(t *testing.T) {
			frame, err := AppendMethod(nil, 3, m)
			if err != nil {
				t.Fatal(err)
			}
			fr := NewFrameReader(bufio.NewReader(bytes.NewReader(frame)), 4096)
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != FrameMethod || f.Channel != 3 {
				t.Fatalf("frame type %d channel %d", f.Type, f.Channel)
			}
			got, err := DecodeMethod(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("decoded %#v, want %#v", got, m)
			}
		})
	}
}

func TestBitPacking(t *testing.T) {
	// queue.declare: reserved short, queue, then five bits in one octet.
	frame, _ := AppendMethod(nil, 1, &QueueDeclare{Queue: "q", Durable: true, AutoDelete: true})
	payload := frame[7 : len(frame)-1]
	want := []byte{0, 50, 0, 10, 0, 0, 1, 'q', 0b01010, 0, 0, 0, 0}
	if !bytes.Equal(payload, want) {
		t.Errorf("payload % x, want % x", payload, want)
	}
}

func TestTableTypes(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	in := Table{
		"t": true, "b": int8(-3), "B": uint8(250), "s": int16(-300), "u": uint16(60000), "I": int32(-70000),
		"i": uint32(4000000000), "l": int64(-1 << 40), "f": float32(1.5), "d": 2.25, "D": Decimal{Scale: 2, Value: 12345},
		"S": "text", "A": []any{int32(1), "two", Table{"x": false}}, "T": ts, "F": Table{"nested": "yes"}, "x": []byte{0, 1}, "V": nil,
	}
	e := Encoder{}
	e.Table(in)
	if e.Err() != nil {
		t.Fatal(e.Err())
	}
	d := NewDecoder(e.Buf)
	out := d.Table()
	if d.Err() != nil || d.Remaining() != 0 {
		t.Fatalf("decode: %v, %d left", d.Err(), d.Remaining())
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("got %#v\nwant %#v", out, in)
	}
	// An unknown type byte is an error, not a panic.
	bad := []byte{0, 0, 0, 3, 1, 'k', 'Z'}
	d = NewDecoder(bad)
	d.Table()
	if !errors.Is(d.Err(), ErrMalformed) {
		t.Errorf("unknown type: err %v", d.Err())
	}
}

func TestContentSplitByFrameMax(t *testing.T) {
	props := Properties{ContentType: "text/plain", DeliveryMode: 2, Headers: Table{"k": "v"}, Timestamp: time.Unix(5, 0), Priority: 0, Flags: FlagPriority}
	body := bytes.Repeat([]byte("x"), 10000)
	buf, err := AppendContent(nil, 1, ClassBasic, &props, body, 4096)
	if err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(bufio.NewReader(bytes.NewReader(buf)), 4096)
	f, err := fr.ReadFrame()
	if err != nil || f.Type != FrameHeader {
		t.Fatalf("header frame: %v type %d", err, f.Type)
	}
	var h ContentHeader
	if err := DecodeContentHeader(f.Payload, &h); err != nil {
		t.Fatal(err)
	}
	wantFlags := FlagContentType | FlagDeliveryMode | FlagHeaders | FlagTimestamp | FlagPriority
	if h.BodySize != 10000 || h.Properties.Flags != wantFlags || h.Properties.ContentType != "text/plain" || h.Properties.Headers["k"] != "v" {
		t.Errorf("header %+v", h)
	}
	var got []byte
	var frames int
	for len(got) < len(body) {
		f, err := fr.ReadFrame()
		if err != nil || f.Type != FrameBody {
			t.Fatalf("body frame: %v type %d", err, f.Type)
		}
		if len(f.Payload)+FrameOverhead > 4096 {
			t.Errorf("body frame of %d bytes passes frame-max", len(f.Payload))
		}
		got = append(got, f.Payload...)
		frames++
	}
	if frames != 3 || !bytes.Equal(got, body) {
		t.Errorf("%d body frames, body equal %v", frames, bytes.Equal(got, body))
	}
}

func TestFrameErrors(t *testing.T) {
	big := []byte{1, 0, 1, 0, 1, 0, 0}
	if _, err := NewFrameReader(bufio.NewReader(bytes.NewReader(big)), 4096).ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	badEnd := []byte{8, 0, 0, 0, 0, 0, 0, 0xCD}
	if _, err := NewFrameReader(bufio.NewReader(bytes.NewReader(badEnd)), 4096).ReadFrame(); !errors.Is(err, ErrFrameEnd) {
		t.Errorf("bad frame-end: %v", err)
	}
	if _, err := DecodeMethod([]byte{0, 99, 0, 1}); !errors.Is(err, ErrUnknownMethod) {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := DecodeMethod([]byte{0, 10, 0, 30, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short tune: %v", err)
	}
	if _, err := DecodeMethod([]byte{0, 85, 0, 10, 0, 9}); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing bytes: %v", err)
	}
}

func BenchmarkDecodePublish(b *testing.B) {
	frame, _ := AppendMethod(nil, 1, &BasicPublish{Exchange: "amq.topic", RoutingKey: "orders.eu.created"})
	payload := frame[7 : len(frame)-1]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMethod(payload); err != nil {
			b.Fatal(err)
		}
	}
}
