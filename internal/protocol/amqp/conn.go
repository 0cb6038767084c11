package amqp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
	"github.com/weirmq/weir/internal/protocol/tcpserve"
)

// handshakeTimeout bounds the time from accept to connection.open.
const handshakeTimeout = 10 * time.Second

// closeTimeout is how long the server waits for connection.close-ok.
const closeTimeout = time.Second

// conn is one client connection. Its reader goroutine (serve) reads frames
// and handles methods in order; consumers and channel publishers write
// frames through write, which serializes them.
type conn struct {
	s   *Server
	nc  net.Conn
	id  uint64
	log *slog.Logger

	frameMax   uint32
	channelMax uint16
	heartbeat  time.Duration
	user       string
	vhost      string // from connection.open: names are of this vhost (names.go)
	// clientCaps are the client's capabilities (consumer_cancel_notify...).
	clientCaps wire.Table

	ctx    context.Context // ends when the connection closes
	cancel context.CancelFunc
	// login is the user the connection logged in as: its principal, against
	// which ctx's broker calls are checked, and its connection limit.
	login *broker.Login

	wmu       sync.Mutex
	closing   bool // connection.close sent: nothing else goes out
	lastWrite atomic.Int64
	lastRead  atomic.Int64
	disk      diskBlock // publishes held below the disk watermark (diskhold.go)
	// readerHeld counts the reader's waits on a full publish queue (its
	// publisher held by a full queue with the block overflow policy, a
	// produce quota or the disk): its silence is then the server's doing.
	readerHeld atomic.Int32

	readFrames *wire.FrameReader
	channels   map[uint16]*channel // reader goroutine only
	hb         sync.WaitGroup      // the heartbeat goroutine
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{s: s, nc: nc, id: id, channels: make(map[uint16]*channel)}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.login, c.ctx = broker.NewLogin(c.ctx, s.cfg.Authenticator)
	c.log = s.log.With("remote", nc.RemoteAddr().String())
	return c
}

// write sends frames, unless the connection is closing.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing {
		return net.ErrClosed
	}
	return c.writeLocked(b)
}

func (c *conn) writeLocked(b []byte) error {
	c.lastWrite.Store(time.Now().UnixNano())
	_, err := c.nc.Write(b)
	return err
}

// sendMethod sends one method on a channel.
func (c *conn) sendMethod(channel uint16, m wire.Method) error {
	b, err := wire.AppendMethod(nil, channel, m)
	if err != nil {
		return err
	}
	return c.write(b)
}

// closeWith sends connection.close for e (once); the reader then waits for
// close-ok.
func (c *conn) closeWith(e *amqpError) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing {
		return
	}
	b, _ := wire.AppendMethod(nil, 0, &wire.ConnectionClose{ReplyCode: e.code, ReplyText: e.text, ClassID: e.classID, MethodID: e.methodID})
	c.writeLocked(b)
	c.closing = true
	c.log.Debug("closing connection", "code", e.code, "text", e.text)
}

// forceClose closes the connection from another goroutine (shutdown). Its
// context ends at once: a publisher held for room (a full queue with the
// block overflow policy, the disk) stops waiting, which frees a reader
// stopped by the publisher's full queue to read the close-ok.
func (c *conn) forceClose(text string) {
	c.closeWith(&amqpError{code: wire.ConnectionForced, text: text})
	c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
	c.cancel()
}

// Close ends the connection at shutdown with CONNECTION_FORCED
// (tcpserve.Conn).
func (c *conn) Close() { c.forceClose("CONNECTION_FORCED - broker shutdown") }

// Serve runs the connection until it ends (tcpserve.Conn).
func (c *conn) Serve() {
	defer c.login.LoggedOut()
	defer c.nc.Close()
	defer c.cancel()
	c.s.stats.accepted.Add(1)
	r := bufio.NewReaderSize(c.nc, tcpserve.BufferBytes)
	if !c.handshake(r) {
		return
	}
	c.s.stats.open.Add(1)
	defer c.s.stats.open.Add(-1)
	c.log = c.log.With("user", c.user)
	c.log.Debug("connection open", "frame_max", c.frameMax, "channel_max", c.channelMax, "heartbeat", c.heartbeat)
	if c.heartbeat > 0 {
		c.hb.Add(1)
		go c.heartbeats()
	}
	err := c.readLoop()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("connection ended", "err", err)
	}
	c.cancel()
	c.nc.Close()
	for _, ch := range c.channels {
		ch.shutdown()
	}
	c.hb.Wait()
	c.s.connClosed(c)
}

// handshake runs the protocol header, start/start-ok, tune/tune-ok and
// open/open-ok. It reports whether the connection is open.
func (c *conn) handshake(r *bufio.Reader) bool {
	c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false
	}
	if !bytes.Equal(hdr[:], wire.ProtocolHeader) {
		// Not AMQP 0-9-1: say what we speak and close.
		c.nc.Write(wire.ProtocolHeader)
		c.log.Debug("wrong protocol header", "header", fmt.Sprintf("% x", hdr))
		return false
	}
	s := c.s
	if err := c.sendMethod(0, &wire.ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: s.serverProperties(),
		Mechanisms: []byte(c.mechanisms()), Locales: []byte("en_US")}); err != nil {
		return false
	}
	fr := wire.NewFrameReader(r, wire.FrameMinSize)
	next := func() (wire.Method, bool) {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return nil, false
			}
			if f.Type == wire.FrameHeartbeat {
				continue
			}
			if f.Type != wire.FrameMethod || f.Channel != 0 {
				c.hardClose(exception(wire.UnexpectedFrame, nil, "frame of type %d on channel %d during the handshake", f.Type, f.Channel), fr)
				return nil, false
			}
			m, err := wire.DecodeMethod(f.Payload)
			if err != nil {
				c.hardClose(exception(wire.SyntaxError, nil, "%v", err), fr)
				return nil, false
			}
			return m, true
		}
	}
	m, ok := next()
	if !ok {
		return false
	}
	startOk, isStartOk := m.(*wire.ConnectionStartOk)
	if !isStartOk {
		c.hardClose(exception(wire.CommandInvalid, m, "expected connection.start-ok, got %s", m.MethodName()), fr)
		return false
	}
	if caps, ok := startOk.ClientProperties["capabilities"].(wire.Table); ok {
		c.clientCaps = caps
	}
	user, err := c.authenticate(startOk)
	if err != nil {
		c.hardClose(exception(wire.AccessRefused, m, "login refused using authentication mechanism %s: %v", startOk.Mechanism, err), fr)
		return false
	}
	c.user = user
	if err := c.login.LoggedIn(user); err != nil {
		// As RabbitMQ for a user at its connection limit: 530 NOT_ALLOWED.
		c.hardClose(exception(wire.NotAllowed, m, "connection refused for user %s: %v", user, err), fr)
		return false
	}
	heartbeat := uint16(0)
	if s.cfg.Heartbeat > 0 {
		heartbeat = uint16(min(s.cfg.Heartbeat/time.Second, 65535))
	}
	if err := c.sendMethod(0, &wire.ConnectionTune{ChannelMax: s.cfg.ChannelMax, FrameMax: s.cfg.FrameMax, Heartbeat: heartbeat}); err != nil {
		return false
	}
	if m, ok = next(); !ok {
		return false
	}
	tuneOk, isTuneOk := m.(*wire.ConnectionTuneOk)
	if !isTuneOk {
		c.hardClose(exception(wire.CommandInvalid, m, "expected connection.tune-ok, got %s", m.MethodName()), fr)
		return false
	}
	c.frameMax = s.cfg.FrameMax
	if tuneOk.FrameMax != 0 && tuneOk.FrameMax < c.frameMax {
		c.frameMax = tuneOk.FrameMax
	}
	if c.frameMax < wire.FrameMinSize {
		c.hardClose(exception(wire.NotAllowed, m, "frame-max %d is below the minimum %d", tuneOk.FrameMax, wire.FrameMinSize), fr)
		return false
	}
	c.channelMax = s.cfg.ChannelMax
	if tuneOk.ChannelMax != 0 && tuneOk.ChannelMax < c.channelMax {
		c.channelMax = tuneOk.ChannelMax
	}
	c.heartbeat = time.Duration(tuneOk.Heartbeat) * time.Second
	fr.SetMaxFrame(c.frameMax)
	if m, ok = next(); !ok {
		return false
	}
	open, isOpen := m.(*wire.ConnectionOpen)
	if !isOpen {
		c.hardClose(exception(wire.CommandInvalid, m, "expected connection.open, got %s", m.MethodName()), fr)
		return false
	}
	vhost := open.VirtualHost
	if vhost == "" {
		vhost = DefaultVhost
	}
	if e := s.openVhost(vhost, user); e != nil {
		e.classID, e.methodID = m.ClassIndex(), m.MethodIndex()
		c.hardClose(e, fr)
		return false
	}
	c.vhost = vhost
	if err := c.sendMethod(0, &wire.ConnectionOpenOk{}); err != nil {
		return false
	}
	c.nc.SetDeadline(time.Time{})
	c.readFrames = fr
	return true
}

// hardClose sends connection.close and waits briefly for close-ok.
func (c *conn) hardClose(e *amqpError, fr *wire.FrameReader) {
	c.s.stats.raised(e.code, true)
	c.closeWith(e)
	c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		if f.Type == wire.FrameMethod && f.Channel == 0 {
			if m, err := wire.DecodeMethod(f.Payload); err == nil {
				switch m.(type) {
				case *wire.ConnectionCloseOk:
					return
				case *wire.ConnectionClose:
					c.wmu.Lock()
					b, _ := wire.AppendMethod(nil, 0, &wire.ConnectionCloseOk{})
					c.writeLocked(b)
					c.wmu.Unlock()
					return
				}
			}
		}
	}
}

// heartbeats sends a heartbeat when nothing was written for half the
// interval, and closes a connection that sent nothing for two intervals.
func (c *conn) heartbeats() {
	defer c.hb.Done()
	tick := time.NewTicker(c.heartbeat / 2)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-tick.C:
			if now.UnixNano()-c.lastRead.Load() > int64(2*c.heartbeat) && c.readerHeld.Load() == 0 {
				c.log.Info("closing connection: no heartbeat from the client", "heartbeat", c.heartbeat)
				c.nc.Close()
				return
			}
			if now.UnixNano()-c.lastWrite.Load() >= int64(c.heartbeat/2) {
				c.write(wire.AppendHeartbeat(nil))
			}
		}
	}
}

// readLoop reads and handles frames until the connection ends.
func (c *conn) readLoop() error {
	fr := c.readFrames
	c.lastRead.Store(time.Now().UnixNano())
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			switch {
			case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrFrameEnd):
				c.hardClose(exception(wire.FrameError, nil, "%v", err), fr)
			}
			return err
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.s.stats.frameReceived(f)
		if e := c.handleFrame(f); e != nil {
			if e.code == closedOK {
				return nil
			}
			c.hardClose(e, fr)
			return e
		}
	}
}

// closedOK is a pseudo reply code: the connection closed cleanly.
const closedOK = 0

func (c *conn) handleFrame(f wire.Frame) *amqpError {
	switch f.Type {
	case wire.FrameHeartbeat:
		if f.Channel != 0 {
			return exception(wire.CommandInvalid, nil, "heartbeat on channel %d", f.Channel)
		}
		return nil
	case wire.FrameMethod, wire.FrameHeader, wire.FrameBody:
	default:
		return exception(wire.FrameError, nil, "unknown frame type %d", f.Type)
	}
	if f.Channel == 0 {
		if f.Type != wire.FrameMethod {
			return exception(wire.CommandInvalid, nil, "content frame on channel 0")
		}
		m, err := wire.DecodeMethod(f.Payload)
		if err != nil {
			return decodeException(err)
		}
		return c.handleConnectionMethod(m)
	}
	ch := c.channels[f.Channel]
	if ch == nil {
		if f.Type != wire.FrameMethod {
			return exception(wire.ChannelError, nil, "content frame on channel %d, which is not open", f.Channel)
		}
		m, err := wire.DecodeMethod(f.Payload)
		if err != nil {
			return decodeException(err)
		}
		if _, ok := m.(*wire.ChannelCloseOk); ok {
			// Both sides closed the channel at once: the client's close
			// was answered and the channel forgotten before its close-ok
			// to our close arrived.
			return nil
		}
		if _, ok := m.(*wire.ChannelOpen); !ok {
			return exception(wire.ChannelError, m, "expected 'channel.open' on channel %d", f.Channel)
		}
		if f.Channel > c.channelMax {
			return exception(wire.ChannelError, m, "channel %d is above channel-max %d", f.Channel, c.channelMax)
		}
		c.channels[f.Channel] = newChannel(c, f.Channel)
		c.sendMethod(f.Channel, &wire.ChannelOpenOk{})
		return nil
	}
	return ch.handleFrame(f)
}

func decodeException(err error) *amqpError {
	if errors.Is(err, wire.ErrUnknownMethod) {
		return exception(wire.CommandInvalid, nil, "%v", err)
	}
	return exception(wire.SyntaxError, nil, "%v", err)
}

func (c *conn) handleConnectionMethod(m wire.Method) *amqpError {
	switch m := m.(type) {
	case *wire.ConnectionClose:
		c.log.Debug("client closes connection", "code", m.ReplyCode, "text", m.ReplyText)
		for id, ch := range c.channels {
			ch.shutdown()
			delete(c.channels, id)
		}
		c.wmu.Lock()
		b, _ := wire.AppendMethod(nil, 0, &wire.ConnectionCloseOk{})
		c.writeLocked(b)
		c.closing = true
		c.wmu.Unlock()
		return &amqpError{code: closedOK}
	case *wire.ConnectionCloseOk:
		return &amqpError{code: closedOK}
	case *wire.ConnectionBlocked, *wire.ConnectionUnblocked:
		return nil
	case *wire.ConnectionUpdateSecret:
		c.sendMethod(0, &wire.ConnectionUpdateSecretOk{})
		return nil
	}
	return exception(wire.CommandInvalid, m, "%s is not valid on channel 0 after the handshake", m.MethodName())
}

// bname is the broker name of an AMQP queue or exchange name of the
// connection's vhost.
func (c *conn) bname(name string) string { return BrokerName(c.vhost, name) }

// clientCapable reports whether the client announced a capability.
func (c *conn) clientCapable(name string) bool {
	v, _ := c.clientCaps[name].(bool)
	return v
}
