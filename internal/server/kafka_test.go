package server

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaListener checks that the Kafka front end listens on the
// configured address, advertises the address the client connected to, and
// that Shutdown closes its connections.
func TestKafkaListener(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr = ""
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr("kafka")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || net.JoinHostPort(md.Brokers[0].Host, itoa(md.Brokers[0].Port)) != addr {
		t.Errorf("Metadata brokers %+v, want one at %s", md.Brokers, addr)
	}

	// A raw connection is closed by Shutdown.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := []byte{0, 18, 0, 0, 0, 0, 0, 9, 0, 0}
	c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(size[:])))
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(size[:]); err == nil || isTimeout(err) {
		t.Errorf("connection still open after Shutdown: %v", err)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
