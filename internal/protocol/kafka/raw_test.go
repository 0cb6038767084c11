package kafka_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// requestFrame builds a request with a v1 header (flexible requests get the
// empty tag section of v2 when flexible is set by the caller in body).
func requestFrame(key, version int16, corr int32, clientID string, body []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	if key == 18 && version >= 3 {
		b = append(b, 0) // tagged fields of header v2
	}
	return append(b, body...)
}

func writeFrame(t *testing.T, c net.Conn, frame []byte) {
	t.Helper()
	out := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
	if _, err := c.Write(append(out, frame...)); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads a response and returns its correlation id and the rest
// (the body, after a v0 response header).
func readFrame(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(buf)), buf[4:]
}
