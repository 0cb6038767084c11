package wire

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the frame reader and decodes each
// frame as the connection would: it must never panic, and a method that
// decodes must encode to a frame that decodes to the same method.
func FuzzDecode(f *testing.F) {
	seed := func(m Method) {
		b, _ := AppendMethod(nil, 1, m)
		f.Add(b)
	}
	seed(&ConnectionStartOk{ClientProperties: Table{"product": "x", "capabilities": Table{"a": true}, "n": []any{int32(1)}}, Mechanism: "PLAIN", Response: []byte("\x00u\x00p"), Locale: "en_US"})
	seed(&QueueDeclare{Queue: "q", Arguments: Table{"x-message-ttl": int64(5), "d": Decimal{1, 2}}})
	seed(&BasicPublish{Exchange: "e", RoutingKey: "k", Mandatory: true})
	props := Properties{ContentType: "a", Headers: Table{"h": []byte{1}}, DeliveryMode: 2}
	content, _ := AppendContent(nil, 1, ClassBasic, &props, []byte("body"), 4096)
	f.Add(content)
	f.Add(AppendHeartbeat(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bufio.NewReader(bytes.NewReader(data)), 1<<16)
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch fm.Type {
			case FrameMethod:
				m, err := DecodeMethod(fm.Payload)
				if err != nil {
					continue
				}
				again, err := AppendMethod(nil, fm.Channel, m)
				if err != nil {
					continue // e.g. a table value re-encoded differently
				}
				m2, err := DecodeMethod(again[7 : len(again)-1])
				if err != nil {
					t.Fatalf("re-encoded %s does not decode: %v", m.MethodName(), err)
				}
				if m2.MethodName() != m.MethodName() {
					t.Fatalf("re-encoded %s decodes as %s", m.MethodName(), m2.MethodName())
				}
			case FrameHeader:
				var h ContentHeader
				_ = DecodeContentHeader(fm.Payload, &h)
			}
		}
	})
}
