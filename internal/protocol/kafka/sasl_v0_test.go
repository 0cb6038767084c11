package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/server"
)

// TestSASLHandshakeV0Refused: SaslHandshake v0 is listed in ApiVersions
// (librdkafka enables SASL only then, and sends v1), but a v0 handshake,
// whose tokens would follow unframed, gets UNSUPPORTED_VERSION and the
// connection is closed.
func TestSASLHandshakeV0Refused(t *testing.T) {
	auth := newTestAuthenticator(t, map[string]string{"alice": "wonderland"})
	w := startWeir(t, func(c *server.Config) { c.KafkaAuthenticator = auth })
	c := dial(t, w.addr)
	req := kmsg.NewSASLHandshakeRequest()
	req.Version = 0
	req.Mechanism = "PLAIN"
	writeFrame(t, c, requestFrame(int16(kmsg.SASLHandshake), 0, 7, "raw", req.AppendTo(nil)))
	corr, body := readFrame(t, c)
	resp := kmsg.NewSASLHandshakeResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body); err != nil || corr != 7 {
		t.Fatalf("response: corr %d, %v", corr, err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Errorf("error code %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
	}
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("connection still open (read %d bytes)", n)
	}
}
