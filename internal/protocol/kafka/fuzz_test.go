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

// FuzzSCRAM feeds arbitrary client-first and client-final messages to the
// SCRAM server: it must answer or fail, never panic, and never accept a
// proof it cannot check.
func FuzzSCRAM(f *testing.F) {
	creds, err := NewSCRAMCredentials(MechanismSCRAMSHA256, "pw", []byte("salt"), 4096)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("n,,n=user,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add([]byte("y,a=user,n=user,r=x"), []byte("c=eSxhPXVzZXIs,r=x,p="))
	f.Add([]byte("n,,n=us=2Cer,r=abc"), []byte(",p=,p=,"))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		x := &scramExchange{mechanism: MechanismSCRAMSHA256, lookup: func(string, string) (SCRAMCredentials, error) { return creds, nil }}
		if _, done, err := x.step(first); err != nil || done {
			return
		}
		if _, done, err := x.step(final); done && err == nil {
			t.Fatalf("a fuzzed proof was accepted: %q then %q", first, final)
		}
	})
}
