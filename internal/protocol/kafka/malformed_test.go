package kafka_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// expectClosed reads from c until the server closes it.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: the server kept the connection open", what)
	}
}

// TestMalformedFrames sends bad frames; each closes only its connection,
// and the server goes on answering others.
func TestMalformedFrames(t *testing.T) {
	w := startWeir(t)
	apiVersions := func() {
		t.Helper()
		c := dial(t, w.addr)
		writeFrame(t, c, requestFrame(18, 0, 1, "ok", nil))
		if corr, _ := readFrame(t, c); corr != 1 {
			t.Fatalf("correlation %d", corr)
		}
	}
	metadataBody := kmsg.NewPtrMetadataRequest()
	metadataBody.Version = 4
	cases := []struct {
		name string
		send func(c net.Conn)
	}{
		{"oversized size", func(c net.Conn) { c.Write([]byte{0x7f, 0xff, 0xff, 0xff, 0, 1}) }},
		{"negative size", func(c net.Conn) { c.Write([]byte{0xff, 0xff, 0xff, 0xf0}) }},
		{"truncated frame", func(c net.Conn) {
			c.Write(binary.BigEndian.AppendUint32(nil, 100))
			c.Write([]byte{0, 18, 0, 0, 0})
			c.(*net.TCPConn).CloseWrite()
		}},
		{"short header", func(c net.Conn) { writeFrame(t, c, []byte{0, 3, 0}) }},
		{"unknown api key", func(c net.Conn) { writeFrame(t, c, requestFrame(999, 0, 1, "x", nil)) }},
		{"unsupported produce version", func(c net.Conn) { writeFrame(t, c, requestFrame(0, 99, 1, "x", nil)) }},
		{"garbage body", func(c net.Conn) {
			writeFrame(t, c, requestFrame(3, 4, 1, "x", []byte{0, 0, 0, 5, 0, 3, 'a'}))
		}},
		{"bad client id length", func(c net.Conn) { writeFrame(t, c, []byte{0, 3, 0, 4, 0, 0, 0, 1, 0x7f, 0xff}) }},
	}
	for _, tc := range cases {
		c := dial(t, w.addr)
		tc.send(c)
		expectClosed(t, c, tc.name)
		apiVersions()
	}
	// Pipelining: several requests written at once are answered in order.
	c := dial(t, w.addr)
	var batch []byte
	for i := range 10 {
		frame := requestFrame(3, 4, int32(100+i), "p", metadataBody.AppendTo(nil))
		batch = binary.BigEndian.AppendUint32(batch, uint32(len(frame)))
		batch = append(batch, frame...)
	}
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if corr, _ := readFrame(t, c); corr != int32(100+i) {
			t.Fatalf("response %d has correlation %d", i, corr)
		}
	}
}
