package mqtt

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/tcpserve"
)

// noExpiry is the session expiry interval that means never.
const noExpiry = 0xFFFFFFFF

// writeTimeout bounds one write to a client, so a client that stopped
// reading cannot hold a delivery goroutine forever.
const writeTimeout = 30 * time.Second

// inflightMsg is a message sent and not acknowledged yet: at QoS 1 the
// queue record to acknowledge (none for a retained message), at QoS 2 its
// entry (qos2.go).
type inflightMsg struct {
	queue  string
	ref    broker.DeliveryRef
	credit bool      // holds a credit of the receive maximum
	out    *outEntry // QoS 2
}

// ackKind is what an ackItem asks of ackLoop.
type ackKind uint8

const (
	ackPuback   ackKind = iota // QoS 1: acknowledge the queue record
	ackReleased                // PUBREC: store the released state, acknowledge, PUBREL
	ackRefused                 // PUBREC with an error: acknowledge, forget
	ackForget                  // PUBCOMP of an acknowledged entry: forget it
	ackPubrel                  // PUBREL of a QoS 2 publish received: forget its packet id, PUBCOMP
)

// ackItem is an acknowledgement from the client for ackLoop.
type ackItem struct {
	kind  ackKind
	queue string
	ref   broker.DeliveryRef
	out   *outEntry
	id    uint16 // ackPubrel
}

// conn is one client connection and, while it lasts, its session.
type conn struct {
	s   *Server
	nc  net.Conn
	id  uint64
	r   *bufio.Reader
	log interface {
		Debug(string, ...any)
		Warn(string, ...any)
	}

	// login is the connected user: its principal, which authz.go checks
	// topics against (not ctx's broker calls: under the broker, topics are
	// routing keys the server manages), and its connection limit.
	login *broker.Login

	wmu  sync.Mutex // guards w and writes to nc
	w    *bufio.Writer
	wbuf []byte

	// Set by CONNECT, then read-only but for persistent and expiry, which
	// a DISCONNECT may change (all on the serving goroutine).
	versionAtomic atomic.Uint32 // the protocol level, once CONNECT was read
	clientID      string
	consumerID    string
	queue         string // the session's queue
	queueID       string // its stream ID, hex (qos2.go)
	persistent    bool   // the session outlives the connection
	expiry        uint32 // MQTT 5 session expiry interval (s); 0xFFFFFFFF (and 3.1.1): never
	maxOutPacket  int    // the client's maximum packet size (0: none)
	will          *Will
	ctx           context.Context // the connection's life; cancelled at its end
	cancel        context.CancelFunc
	credits       *creditPool           // the receive maximum: QoS 1 messages in flight
	acks          chan ackItem          // PUBACKs, PUBRECs, PUBCOMPs, to ackLoop
	pubs          chan *pendingPublish  // PUBLISHes, to publishLoop
	pubDone       chan struct{}         // closed when publishLoop has ended
	pubErr        atomic.Pointer[error] // a publish failure that ends the connection
	ackDone       chan struct{}         // closed when ackLoop has ended
	done          chan struct{}         // closed when serve has cleaned up
	registered    bool                  // byClient holds this connection
	counted       bool                  // counted in Stats.Connections
	live          atomic.Bool           // CONNACK sent: $SYS messages may be sent
	sysBusy       atomic.Bool           // $SYS messages are being sent
	closeOnce     sync.Once
	normalEnd     bool // DISCONNECT without will; guarded by mu
	serverStopped bool // closed by the server's Close; guarded by mu

	mu        sync.Mutex // guards the fields below
	subs      map[string]subState
	consumers map[string]context.CancelFunc // delivery loops by queue
	inflight  map[uint16]inflightMsg
	nextID    uint16
	inQoS2    map[uint16]bool      // QoS 2 publishes received and not yet released
	aliases   map[uint16]string    // MQTT 5 topic aliases of the client's publishes (the reader's only)
	out       map[uint64]*outEntry // QoS 2 messages sent and not completed, by sequence number
	nextSeq   uint64
	loops     sync.WaitGroup
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		s: s, nc: nc, id: id, r: bufio.NewReaderSize(nc, tcpserve.BufferBytes), w: bufio.NewWriterSize(nc, tcpserve.BufferBytes),
		log: s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), login: newLogin(s),
		consumerID: fmt.Sprintf("mqtt-%d-%d", time.Now().UnixNano(), id),
		subs:       map[string]subState{}, consumers: map[string]context.CancelFunc{},
		inflight: map[uint16]inflightMsg{}, inQoS2: map[uint16]bool{}, out: map[uint64]*outEntry{}, nextSeq: 1,
	}
}

// shutdown closes the connection from another goroutine, telling an MQTT 5
// client why. It does not wait.
func (c *conn) shutdown(reason byte) {
	c.closeOnce.Do(func() {
		if reason == reasonServerShuttingDown {
			c.mu.Lock()
			c.serverStopped = true
			c.mu.Unlock()
		}
		if c.version() == Version5 {
			c.write(&Disconnect{ReasonCode: reason})
		}
		c.nc.Close()
	})
}

// write encodes and sends one packet.
func (c *conn) write(p Packet) error { return c.writePacket(p, true) }

// writePacket encodes one packet into the connection's buffer and, with
// flush, sends what the buffer holds. Writers of several packets in a row
// (a batch of deliveries or acknowledgements) flush after the last, so
// they cost one system call rather than one each.
func (c *conn) writePacket(p Packet, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = AppendPacket(c.wbuf[:0], p, c.version())
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.w.Write(c.wbuf); err != nil {
		return err
	}
	if flush {
		if err := c.w.Flush(); err != nil {
			return err
		}
	}
	c.s.counters.packet(p, false)
	return nil
}

// flush sends what writePacket left in the buffer.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.w.Flush()
}

// Close ends the connection at shutdown: MQTT 5 clients are told the
// server is shutting down (tcpserve.Conn).
func (c *conn) Close() { c.shutdown(reasonServerShuttingDown) }

// Serve runs the connection until it ends (tcpserve.Conn).
func (c *conn) Serve() {
	defer close(c.done)
	defer c.login.LoggedOut()
	defer c.nc.Close()
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.ConnectTimeout))
	p, err := ReadPacket(c.r, 0, c.s.cfg.MaxPacketSize)
	if err != nil {
		c.log.Debug("no CONNECT", "err", err)
		return
	}
	c.s.counters.packet(p, true)
	connect := p.(*Connect)
	if err := c.connect(connect); err != nil {
		c.log.Debug("CONNECT refused", "err", err)
		if c.registered {
			c.s.release(c)
		}
		return
	}
	err = c.readLoop(time.Duration(connect.KeepAlive) * time.Second)
	c.end(err)
}

// connect handles CONNECT: the session is set up and CONNACK sent, or the
// connection refused (CONNACK with the reason) and an error returned.
func (c *conn) connect(p *Connect) error {
	refuse := func(v311, v5 byte, err error) error {
		code := v311
		if p.Version == Version5 {
			code = v5
		}
		c.setVersion(p.Version)
		if c.version() != Version5 {
			c.setVersion(Version311)
		}
		c.write(&Connack{ReasonCode: code})
		return err
	}
	if !p.supported() {
		c.setVersion(Version311)
		c.write(&Connack{ReasonCode: returnUnacceptableVersion})
		return fmt.Errorf("protocol %q level %d", p.ProtocolName, p.Version)
	}
	c.setVersion(p.Version)
	if c.version() == Version31 {
		c.setVersion(Version311) // the same packets
	}
	v5 := c.version() == Version5
	var ack Connack
	c.clientID = p.ClientID
	if c.clientID == "" {
		if !v5 && !p.CleanStart {
			return refuse(returnIdentifierRejected, reasonClientIDNotValid, errors.New("empty client id with a persistent session"))
		}
		var b [12]byte
		rand.Read(b[:])
		c.clientID = "weir-" + hex.EncodeToString(b[:])
		if v5 {
			ack.Props.AssignedClientID = c.clientID
			ack.Props.Set(propAssignedClientID)
		}
	}
	if p.Will != nil && !ValidTopicName(p.Will.Topic) {
		err := fmt.Errorf("will topic %q", p.Will.Topic)
		if !v5 {
			return err // 3.1.1 has no return code for it: closed
		}
		return refuse(0, reasonTopicNameInvalid, err)
	}
	user, limited, authErr := c.authenticate(p)
	switch {
	case authErr != nil && limited:
		return refuse(returnServerUnavailable, reasonQuotaExceeded, authErr)
	case authErr != nil:
		return refuse(returnBadUserOrPassword, reasonBadUserOrPassword, fmt.Errorf("authentication: %w", authErr))
	}
	if c.login.Authorizing() && c.login.Principal() == nil {
		return refuse(returnNotAuthorized, reasonNotAuthorized, errors.New("no rules for this user"))
	}
	if p.Will != nil && !c.allowed(p.Will.Topic, auth.ActionPublish) {
		return refuse(returnNotAuthorized, reasonNotAuthorized, fmt.Errorf("will topic %q: not authorized", p.Will.Topic))
	}
	if v5 && p.Props.Has(propAuthMethod) {
		// Extended authentication is not offered.
		return refuse(returnServerUnavailable, reasonBadAuthMethod, errors.New("authentication method "+p.Props.AuthMethod))
	}
	c.will = p.Will
	if v5 {
		c.persistent = p.Props.SessionExpiry > 0
		c.expiry = p.Props.SessionExpiry
		if p.Props.Has(propMaximumPacketSize) {
			c.maxOutPacket = int(p.Props.MaximumPacketSize)
		}
	} else {
		c.persistent = !p.CleanStart
		c.expiry = noExpiry
	}
	recvMax := c.s.cfg.ReceiveMaximum
	if v5 && p.Props.Has(propReceiveMaximum) {
		recvMax = min(recvMax, int(p.Props.ReceiveMaximum))
	}
	c.credits = newCreditPool(recvMax)
	if err := c.s.takeOver(c); err != nil {
		return refuse(returnServerUnavailable, reasonServerUnavailable, err)
	}
	c.registered = true
	c.queue = sessionQueue(c.clientID)
	ctx := c.ctx
	sessionLock := c.s.sessionLock(c.clientID)
	sessionLock.Lock()
	locked := true
	defer func() {
		if locked {
			sessionLock.Unlock()
		}
	}()
	stored, existed := c.s.sessions.get(c.clientID)
	if existed && stored.ExpiresAt != 0 && stored.ExpiresAt <= time.Now().UnixMilli() {
		p.CleanStart = true // expired: a new session
	}
	if p.CleanStart {
		if err := c.discardSession(ctx); err != nil {
			return refuse(returnServerUnavailable, reasonServerUnavailable, err)
		}
		existed = false
	}
	_, err := c.s.b.CreateQueue(ctx, broker.QueueConfig{
		Name: c.queue, Partitions: 1, DedupWindow: -1,
		Subscription: broker.SubscriptionConfig{AckTimeout: broker.MaxAckTimeout},
	})
	if err != nil && !errors.Is(err, broker.ErrStreamExists) {
		return refuse(returnServerUnavailable, reasonServerUnavailable, err)
	}
	if err := c.loadQueueID(); err != nil {
		return refuse(returnServerUnavailable, reasonServerUnavailable, err)
	}
	if existed {
		c.resumeQoS2()
		for _, id := range c.s.qos2.receivedIn(c.clientID) {
			c.inQoS2[id] = true
		}
		for f, st := range stored.Subs {
			c.subs[f] = st
			// The bindings are stored with the exchange; binding again
			// changes nothing, or repairs a queue deleted by hand.
			if _, err := c.bindFilter(f, st.Group, st.Filter); err != nil {
				return refuse(returnServerUnavailable, reasonServerUnavailable, err)
			}
		}
	}
	if c.persistent && (!existed || stored.ExpiresAt != 0) {
		// Stored, and not expiring while connected.
		st := sessionState{Subs: map[string]subState{}}
		if existed {
			st.Subs = stored.Subs
		}
		if err := c.s.sessions.put(ctx, c.clientID, st); err != nil {
			return refuse(returnServerUnavailable, reasonServerUnavailable, err)
		}
	}
	sessionLock.Unlock()
	locked = false
	ack.SessionPresent = existed
	if v5 {
		ack.Props.ReceiveMaximum = uint16(c.s.cfg.ReceiveMaximum)
		ack.Props.Set(propReceiveMaximum)
		ack.Props.MaximumPacketSize = uint32(c.s.cfg.MaxPacketSize)
		ack.Props.Set(propMaximumPacketSize)
		ack.Props.TopicAliasMaximum = uint16(c.s.cfg.TopicAliasMaximum)
		ack.Props.Set(propTopicAliasMaximum)
	}
	if err := c.write(&ack); err != nil {
		return err
	}
	c.s.counters.connected()
	c.counted = true
	c.live.Store(true)
	c.acks = make(chan ackItem, 256)
	c.ackDone = make(chan struct{})
	go c.ackLoop()
	c.pubs = make(chan *pendingPublish, 64)
	c.pubDone = make(chan struct{})
	go c.publishLoop()
	if err := c.resendQoS2(); err != nil {
		c.nc.Close() // the reader fails, and end cleans up
	}
	c.startConsumer(c.queue)
	for _, st := range c.subs {
		if st.Group != "" {
			c.startConsumer(shareQueue(st.Group, st.Filter))
		}
	}
	c.log.Debug("connected", "client", c.clientID, "user", user, "version", c.version(), "persistent", c.persistent, "present", existed)
	return nil
}

// discardSession removes the stored session of the client id: its queue
// (and so its bindings) and its record.
func (c *conn) discardSession(ctx context.Context) error {
	if err := c.s.b.DeleteStream(ctx, c.queue); err != nil && !errors.Is(err, broker.ErrStreamNotFound) {
		return err
	}
	if err := c.s.qos2.remove(ctx, c.clientID, nil); err != nil {
		return err
	}
	return c.s.sessions.remove(ctx, c.clientID)
}

// readLoop reads and handles packets until the connection ends; it
// returns nil after DISCONNECT.
func (c *conn) readLoop(keepAlive time.Duration) error {
	for {
		if keepAlive > 0 {
			c.nc.SetReadDeadline(time.Now().Add(keepAlive * 3 / 2))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		p, err := ReadPacket(c.r, c.version(), c.s.cfg.MaxPacketSize)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				return closeWith(reasonKeepAliveTimeout, fmt.Errorf("keep alive: nothing for %v", keepAlive*3/2))
			}
			return err
		}
		c.s.counters.packet(p, true)
		if d, ok := p.(*Disconnect); ok {
			if d.Props.Has(propSessionExpiry) {
				if c.expiry == 0 && d.Props.SessionExpiry != 0 {
					return protocolErr("DISCONNECT sets a session expiry after CONNECT set none")
				}
				c.expiry = d.Props.SessionExpiry
				c.persistent = c.expiry > 0
			}
			if d.ReasonCode == reasonDisconnectWithWill {
				return errors.New("disconnect with will message")
			}
			c.mu.Lock()
			c.normalEnd = true
			c.mu.Unlock()
			return nil
		}
		if err := c.handle(p); err != nil {
			return err
		}
	}
}

// end tears the connection down: MQTT 5 clients are told why (unless it
// was their DISCONNECT), deliveries stop, the will is published when the
// connection ended abnormally, and a session that does not persist is
// removed.
func (c *conn) end(err error) {
	if err != nil && c.version() == Version5 && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		var ce *connectionError
		reason := reasonOf(err)
		if errors.As(err, &ce) {
			reason = ce.reason
		}
		if reason != reasonSuccess && (errors.As(err, &ce) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrProtocol) || errors.Is(err, ErrPacketTooLarge)) {
			c.closeOnce.Do(func() {
				c.write(&Disconnect{ReasonCode: reason})
				c.nc.Close()
			})
		}
	}
	c.nc.Close()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("connection closed", "client", c.clientID, "err", err)
	}
	// Store what the client published (and answer it, if it can still
	// hear) before the will.
	close(c.pubs)
	<-c.pubDone
	// Acknowledge what the client acknowledged before the delivery loops
	// end and hand back what they hold.
	close(c.acks)
	<-c.ackDone
	c.cancel()
	c.loops.Wait()
	c.mu.Lock()
	normal, stopped := c.normalEnd, c.serverStopped
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c.will != nil && !normal && !stopped {
		// MQTT 5: after the will delay, or when the session ends if that
		// is sooner; cancelled if the client id connects again first.
		delay := time.Duration(c.will.Props.WillDelay) * time.Second
		if !c.persistent {
			delay = 0
		} else if c.expiry != noExpiry {
			delay = min(delay, time.Duration(c.expiry)*time.Second)
		}
		if delay > 0 {
			c.s.scheduleWill(c.clientID, c.will, delay)
		} else if err := c.s.publishWill(ctx, c.clientID, c.will); err != nil {
			c.log.Warn("will message not published", "client", c.clientID, "err", err)
		}
	}
	switch {
	case !c.persistent:
		if err := c.discardSession(ctx); err != nil {
			c.log.Warn("session not removed", "client", c.clientID, "err", err)
		}
	case c.expiry != noExpiry:
		// The expiry interval starts now (also at a server shutdown).
		if err := c.saveSession(ctx, time.Now().Add(time.Duration(c.expiry)*time.Second).UnixMilli()); err != nil {
			c.log.Warn("session expiry not stored", "client", c.clientID, "err", err)
		}
	}
	if c.registered {
		c.s.release(c)
	}
	if c.counted {
		c.s.counters.disconnected()
	}
}

// publishWill publishes a will message (and retains it when flagged).
func (s *Server) publishWill(ctx context.Context, clientID string, w *Will) error {
	pub := &Publish{Topic: w.Topic, QoS: w.QoS, Retain: w.Retain, Props: w.Props, Payload: w.Payload}
	rec := toRecord(pub, clientID)
	if w.Retain {
		if err := s.retained.set(ctx, w.Topic, rec); err != nil {
			return err
		}
	}
	_, err := s.b.PublishExchange(ctx, Exchange, RoutingKey(w.Topic), []broker.Record{rec})
	return err
}

// handle handles one packet after CONNECT.
func (c *conn) handle(p Packet) error {
	switch p := p.(type) {
	case *Publish:
		return c.handlePublish(p)
	case *Ack:
		switch p.Type {
		case typePuback:
			c.handlePuback(p.PacketID)
			return nil
		case typePubrec:
			return c.handlePubrec(p)
		case typePubcomp:
			c.handlePubcomp(p.PacketID)
			return nil
		case typePubrel:
			c.acks <- ackItem{kind: ackPubrel, id: p.PacketID} // to ackLoop: PUBCOMP (qos2in.go)
			return nil
		default:
			return protocolErr("unexpected packet type %d", p.Type)
		}
	case *Subscribe:
		return c.handleSubscribe(p)
	case *Unsubscribe:
		return c.handleUnsubscribe(p)
	case *Pingreq:
		return c.write(&Pingresp{})
	case *Auth:
		return protocolErr("AUTH without an authentication method")
	}
	return protocolErr("unexpected packet")
}

func (c *conn) handlePublish(p *Publish) error {
	v5 := c.version() == Version5
	if v5 && p.Props.Has(propTopicAlias) {
		if err := c.resolveAlias(p); err != nil {
			return err
		}
	}
	if v5 && p.Props.Has(propSubscriptionID) {
		return protocolErr("subscription identifier in PUBLISH")
	}
	if !ValidTopicName(p.Topic) {
		return closeWith(reasonTopicNameInvalid, malformed("topic name %q", p.Topic))
	}
	if err := c.publishFailure(); err != nil {
		return err
	}
	pp := &pendingPublish{p: p, denied: isSysTopic(p.Topic) || !c.allowed(p.Topic, auth.ActionPublish)}
	if pp.denied {
		c.log.Debug("publish refused: not authorized", "client", c.clientID, "topic", p.Topic)
	}
	if p.QoS == 2 {
		c.mu.Lock()
		pp.resent = c.inQoS2[p.PacketID]
		c.inQoS2[p.PacketID] = true
		c.mu.Unlock()
	}
	if !pp.resent && !pp.denied {
		pp.rec = toRecord(p, c.clientID)
	}
	c.pubs <- pp // to publishLoop
	return nil
}

// resolveAlias applies an MQTT 5 topic alias of a PUBLISH: with a topic it
// sets the alias, without one it stands for the topic it was set to. The
// alias is taken out of the properties (it is not stored).
func (c *conn) resolveAlias(p *Publish) error {
	alias := p.Props.TopicAlias
	if alias == 0 || int(alias) > c.s.cfg.TopicAliasMaximum {
		return closeWith(reasonTopicAliasInvalid, protocolErr("topic alias %d (the maximum is %d)", alias, c.s.cfg.TopicAliasMaximum))
	}
	p.Props.TopicAlias = 0
	p.Props.Clear(propTopicAlias)
	if p.Topic == "" {
		topic, ok := c.aliases[alias]
		if !ok {
			return protocolErr("topic alias %d was not set", alias)
		}
		p.Topic = topic
		return nil
	}
	if !ValidTopicName(p.Topic) {
		return closeWith(reasonTopicNameInvalid, malformed("topic name %q", p.Topic))
	}
	if c.aliases == nil {
		c.aliases = map[uint16]string{}
	}
	c.aliases[alias] = p.Topic
	return nil
}

func (c *conn) handlePuback(id uint16) {
	c.mu.Lock()
	m, ok := c.inflight[id]
	if ok && m.out != nil {
		ok = false // QoS 2 in flight: PUBREC is due, not PUBACK
	} else {
		delete(c.inflight, id)
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	if m.credit {
		c.credits.put()
	}
	if m.queue != "" {
		c.acks <- ackItem{kind: ackPuback, queue: m.queue, ref: m.ref} // to ackLoop, which batches them
	}
}

// ackLoop acknowledges the records of the PUBACKs handlePuback passes on,
// all that are waiting in one call per queue, so a subscriber's stream of
// PUBACKs costs one state commit per batch rather than one each, and the
// reader does not wait for them; and settles the QoS 2 messages of PUBRECs
// and PUBCOMPs (settleQoS2). It ends when acks is closed (the reader has
// ended), after the last batch.
func (c *conn) ackLoop() {
	defer close(c.ackDone)
	for first := range c.acks {
		batch := map[string][]broker.DeliveryRef{}
		var released, forget, refused []*outEntry
		var pubrels []uint16
		add := func(m ackItem) {
			switch m.kind {
			case ackPuback:
				batch[m.queue] = append(batch[m.queue], m.ref)
			case ackReleased:
				released = append(released, m.out)
			case ackRefused:
				refused = append(refused, m.out)
			case ackForget:
				forget = append(forget, m.out)
			case ackPubrel:
				pubrels = append(pubrels, m.id)
			}
		}
		add(first)
	more:
		for {
			select {
			case m, ok := <-c.acks:
				if !ok {
					break more
				}
				add(m)
			default:
				break more
			}
		}
		if len(released)+len(forget)+len(refused) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := c.settleQoS2(ctx, released, forget, refused); err != nil {
				c.log.Warn("QoS 2 acknowledgement failed; closing the connection", "err", err)
				c.shutdown(reasonOf(err))
			}
			cancel()
		}
		if len(pubrels) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := c.release(ctx, pubrels); err != nil {
				c.log.Debug("PUBREL not answered; closing the connection", "err", err)
				c.shutdown(reasonOf(err))
			}
			cancel()
		}
		for q, refs := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := c.s.b.Ack(ctx, q, q, c.consumerID, refs); err != nil {
				c.log.Debug("ack failed; the records will be delivered again", "queue", q, "err", err)
			}
			cancel()
		}
	}
}

func (c *conn) handleSubscribe(p *Subscribe) error {
	v5 := c.version() == Version5
	var subID int // MQTT 5: the subscription identifier of every filter of the packet
	if v5 && p.Props.Has(propSubscriptionID) {
		if len(p.Props.SubscriptionIDs) != 1 {
			return protocolErr("SUBSCRIBE with %d subscription identifiers", len(p.Props.SubscriptionIDs))
		}
		subID = p.Props.SubscriptionIDs[0]
	}
	codes := make([]byte, len(p.Subscriptions))
	type retainedSend struct {
		filter string
		qos    byte
	}
	var sends []retainedSend
	changed := false
	for i, sub := range p.Subscriptions {
		fail := byte(subackFailure311)
		if v5 {
			fail = reasonTopicFilterInvalid
		}
		group, filter, shared, valid := parseShared(sub.Filter)
		if !shared {
			filter, valid = sub.Filter, ValidFilter(sub.Filter)
		}
		if !valid {
			codes[i] = fail
			continue
		}
		if !c.allowed(filter, auth.ActionConsume) {
			codes[i] = byte(subackFailure311)
			if v5 {
				codes[i] = reasonNotAuthorized
			}
			continue
		}
		if shared && sub.NoLocal {
			return protocolErr("no local on a shared subscription")
		}
		// Shared subscriptions are granted QoS 1 at most: a QoS 2 message
		// handed back to the group when a member leaves could reach the
		// application twice.
		granted := min(sub.QoS, 2)
		if shared {
			granted = min(granted, 1)
		}
		dest, err := c.bindFilter(sub.Filter, group, filter)
		if err != nil {
			c.log.Warn("subscribe", "filter", sub.Filter, "err", err)
			codes[i] = byte(subackFailure311)
			if v5 {
				codes[i] = reasonOf(err)
			}
			continue
		}
		st := subState{QoS: granted, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, SubID: subID}
		if shared {
			st.Group, st.Filter = group, filter
		}
		c.mu.Lock()
		_, existed := c.subs[sub.Filter]
		c.subs[sub.Filter] = st
		c.mu.Unlock()
		changed = true
		codes[i] = granted
		if shared {
			c.startConsumer(dest)
		} else if sub.RetainHandling == 0 || sub.RetainHandling == 1 && !existed {
			sends = append(sends, retainedSend{filter, granted})
		}
	}
	if changed {
		if err := c.saveSession(c.ctx, 0); err != nil {
			return err
		}
	}
	if err := c.write(&Suback{PacketID: p.PacketID, Codes: codes}); err != nil {
		return err
	}
	var recs []broker.Record
	var granted []byte
	for _, s := range sends {
		for _, rec := range append(c.s.retained.matching(s.filter), c.s.sysRetained(s.filter)...) {
			recs = append(recs, rec)
			granted = append(granted, s.qos)
		}
	}
	if len(recs) > 0 {
		// Off the reader: QoS 1 ones wait for credits of the receive
		// maximum, which PUBACKs the reader handles give back.
		c.loops.Add(1)
		go func() {
			defer c.loops.Done()
			for i, rec := range recs {
				var ids []int
				if subID != 0 {
					ids = []int{subID}
				}
				if err := c.sendRetained(rec, granted[i], ids); err != nil {
					c.shutdown(reasonUnspecified)
					return
				}
			}
		}()
	}
	return nil
}

// bindFilter binds a subscription's filter to the queue it delivers
// through: the session's, or (shared) the group's, created if missing. It
// returns the queue.
func (c *conn) bindFilter(subFilter, group, shareFilter string) (string, error) {
	dest, filter := c.queue, subFilter
	if group != "" {
		dest, filter = shareQueue(group, shareFilter), shareFilter
		_, err := c.s.b.CreateQueue(c.ctx, broker.QueueConfig{
			Name: dest, Partitions: 1, DedupWindow: -1,
			Subscription: broker.SubscriptionConfig{AckTimeout: broker.MaxAckTimeout},
		})
		if err != nil && !errors.Is(err, broker.ErrStreamExists) {
			return "", err
		}
	}
	return dest, c.s.b.Bind(c.ctx, Exchange, broker.Binding{Destination: dest, Key: BindingKey(filter)})
}

// saveSession stores a persistent session's subscriptions, and when it
// expires (0: not while connected).
func (c *conn) saveSession(ctx context.Context, expiresAt int64) error {
	if !c.persistent {
		return nil
	}
	c.mu.Lock()
	st := sessionState{Subs: make(map[string]subState, len(c.subs)), ExpiresAt: expiresAt}
	for f, s := range c.subs {
		st.Subs[f] = s
	}
	c.mu.Unlock()
	return c.s.sessions.put(ctx, c.clientID, st)
}

func (c *conn) handleUnsubscribe(p *Unsubscribe) error {
	codes := make([]byte, len(p.Filters))
	changed := false
	for i, f := range p.Filters {
		c.mu.Lock()
		st, ok := c.subs[f]
		delete(c.subs, f)
		// Another filter of the session may share the binding.
		stillBound := false
		for other, o := range c.subs {
			if o.Group == "" && st.Group == "" && BindingKey(other) == BindingKey(f) {
				stillBound = true
			}
		}
		c.mu.Unlock()
		if !ok {
			codes[i] = reasonNoSubscriptionExisted
			continue
		}
		changed = true
		if st.Group != "" {
			// The binding belongs to the group; this member stops consuming.
			q := shareQueue(st.Group, st.Filter)
			c.stopConsumer(q)
			continue
		}
		if !stillBound {
			if err := c.s.b.Unbind(c.ctx, Exchange, broker.Binding{Destination: c.queue, Key: BindingKey(f)}); err != nil {
				codes[i] = reasonOf(err)
			}
		}
	}
	if changed {
		if err := c.saveSession(c.ctx, 0); err != nil {
			return err
		}
	}
	ack := &Unsuback{PacketID: p.PacketID}
	if c.version() == Version5 {
		ack.Codes = codes
	}
	return c.write(ack)
}

func (c *conn) version() byte     { return byte(c.versionAtomic.Load()) }
func (c *conn) setVersion(v byte) { c.versionAtomic.Store(uint32(v)) }
