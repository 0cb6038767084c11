package kafka

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzParseRequest feeds arbitrary frames to the request decoder (header
// and body): it must return a request or an error, never panic, and never
// allocate past the frame limit.
func FuzzParseRequest(f *testing.F) {
	for key, a := range apis {
		for v := a.min; v <= a.max; v++ {
			req := kmsg.RequestForKey(key)
			if d, ok := req.(interface{ Default() }); ok {
				d.Default()
			}
			req.SetVersion(v)
			var frame []byte
			frame = binary.BigEndian.AppendUint16(frame, uint16(key))
			frame = binary.BigEndian.AppendUint16(frame, uint16(v))
			frame = binary.BigEndian.AppendUint32(frame, 1)
			frame = binary.BigEndian.AppendUint16(frame, 1)
			frame = append(frame, 'c')
			if req.IsFlexible() {
				frame = append(frame, 0)
			}
			f.Add(req.AppendTo(frame))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := parseRequest(frame)
		if err == nil && req == nil {
			t.Fatal("no request and no error")
		}
		// The same bytes through the framing reader, with a small limit.
		var in bytes.Buffer
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(frame))))
		in.Write(frame)
		readRequest(bufio.NewReader(&in), 1<<10)
	})
}
