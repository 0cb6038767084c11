package mqtt

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// node is a broker and an MQTT server on a loopback listener, restartable
// on the same data directory and address.
type node struct {
	t    testing.TB
	dir  string
	addr string
	cfg  Config        // without the broker
	bcfg broker.Config // without the data directory
	b    *broker.Broker
	s    *Server
}

func startNode(t testing.TB) *node {
	t.Helper()
	return startNodeWith(t, Config{})
}

func startNodeWith(t testing.TB, cfg Config) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", cfg: cfg}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	bcfg := n.bcfg
	bcfg.DataDir = n.dir
	b, err := broker.Open(bcfg)
	if err != nil {
		n.t.Fatal(err)
	}
	cfg := n.cfg
	cfg.Broker = b
	s, err := New(cfg)
	if err != nil {
		b.Close()
		n.t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the port of a restart may linger briefly
		ln, err = net.Listen("tcp", n.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	n.b, n.s = b, s
	go s.Serve(ln)
}

func (n *node) stop() {
	if n.s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.s.Close(ctx); err != nil {
		n.t.Errorf("close mqtt server: %v", err)
	}
	if err := n.b.Close(); err != nil {
		n.t.Errorf("close broker: %v", err)
	}
	n.s, n.b = nil, nil
}

func (n *node) restart() {
	n.stop()
	n.start()
}

// rawClient speaks MQTT with this package's codec, for what client
// libraries do not let a test do: not acknowledging, breaking the
// connection, sending bad bytes, reading reason codes.
type rawClient struct {
	t       testing.TB
	nc      net.Conn
	r       *bufio.Reader
	version byte
}

func dialRaw(t testing.TB, addr string, version byte) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc), version: version}
}

func (c *rawClient) send(p Packet) {
	c.t.Helper()
	if _, err := c.nc.Write(AppendPacket(nil, p, c.version)); err != nil {
		c.t.Fatalf("send %T: %v", p, err)
	}
}

// recv reads the next packet, failing the test after timeout.
func (c *rawClient) recv(timeout time.Duration) Packet {
	c.t.Helper()
	p, err := c.tryRecv(timeout)
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return p
}

func (c *rawClient) tryRecv(timeout time.Duration) (Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	return ReadServerPacket(c.r, c.version, 1<<22)
}

// expectNothing checks that no packet arrives for d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.tryRecv(d)
	if err == nil {
		c.t.Fatalf("got %#v, want nothing", p)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("connection: %v, want it open and silent", err)
	}
}

// expectClosed reads until the server closes the connection, returning
// the DISCONNECT it sent first, if any.
func (c *rawClient) expectClosed(timeout time.Duration) *Disconnect {
	c.t.Helper()
	var d *Disconnect
	for {
		p, err := c.tryRecv(timeout)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.t.Fatal("connection still open")
			}
			return d
		}
		if x, ok := p.(*Disconnect); ok {
			d = x
		}
	}
}

func (c *rawClient) connect(cp *Connect) *Connack {
	c.t.Helper()
	if cp.ProtocolName == "" {
		cp.ProtocolName = "MQTT"
	}
	cp.Version = c.version
	c.send(cp)
	p := c.recv(5 * time.Second)
	ack, ok := p.(*Connack)
	if !ok {
		c.t.Fatalf("got %#v, want CONNACK", p)
	}
	return ack
}

func (c *rawClient) subscribe(id uint16, subs ...Subscription) []byte {
	c.t.Helper()
	c.send(&Subscribe{PacketID: id, Subscriptions: subs})
	for {
		p := c.recv(5 * time.Second)
		if sa, ok := p.(*Suback); ok {
			if sa.PacketID != id {
				c.t.Fatalf("SUBACK for %d, want %d", sa.PacketID, id)
			}
			return sa.Codes
		}
	}
}

// recvPublish reads the next PUBLISH.
func (c *rawClient) recvPublish(timeout time.Duration) *Publish {
	c.t.Helper()
	p := c.recv(timeout)
	pub, ok := p.(*Publish)
	if !ok {
		c.t.Fatalf("got %#v, want PUBLISH", p)
	}
	return pub
}
