package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// ReplConn is a logical replication connection (replication=database).
type ReplConn struct {
	conn *pgconn.PgConn
}

// Connect opens a replication connection; connString is a libpq connection
// string or URL, and replication=database and the connector's session
// settings (sessionParams: the text forms of values) are added to it.
func Connect(ctx context.Context, connString string) (*ReplConn, error) {
	conn, err := connect(ctx, connString, true)
	if err != nil {
		return nil, err
	}
	return &ReplConn{conn: conn}, nil
}

// connect opens a connection with the connector's session settings, as a
// replication connection or an ordinary one.
func connect(ctx context.Context, connString string, replication bool) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// PgConn returns the underlying connection.
func (c *ReplConn) PgConn() *pgconn.PgConn { return c.conn }

// Close closes the connection.
func (c *ReplConn) Close(ctx context.Context) error { return c.conn.Close(ctx) }

// simpleQuery runs one replication command and returns its single result.
func (c *ReplConn) simpleQuery(ctx context.Context, sql string) (*pgconn.Result, error) {
	results, err := c.conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("postgres: %s: expected 1 result, got %d", strings.Fields(sql)[0], len(results))
	}
	return results[0], nil
}

// SystemInfo is the result of IDENTIFY_SYSTEM.
type SystemInfo struct {
	SystemID string
	Timeline int32
	XLogPos  LSN
	DBName   string
}

// IdentifySystem runs IDENTIFY_SYSTEM.
func (c *ReplConn) IdentifySystem(ctx context.Context) (SystemInfo, error) {
	res, err := c.simpleQuery(ctx, "IDENTIFY_SYSTEM")
	if err != nil {
		return SystemInfo{}, err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 4 {
		return SystemInfo{}, fmt.Errorf("postgres: IDENTIFY_SYSTEM: unexpected result shape")
	}
	row := res.Rows[0]
	tl, err := strconv.ParseInt(string(row[1]), 10, 32)
	if err != nil {
		return SystemInfo{}, fmt.Errorf("postgres: IDENTIFY_SYSTEM timeline: %w", err)
	}
	pos, err := ParseLSN(string(row[2]))
	if err != nil {
		return SystemInfo{}, err
	}
	return SystemInfo{SystemID: string(row[0]), Timeline: int32(tl), XLogPos: pos, DBName: string(row[3])}, nil
}

// SlotSnapshot selects what CREATE_REPLICATION_SLOT does with the slot's
// snapshot (PostgreSQL 15 option syntax).
type SlotSnapshot string

const (
	SnapshotExport  SlotSnapshot = "export"  // export it; the name is in Slot.SnapshotName
	SnapshotNothing SlotSnapshot = "nothing" // no snapshot
	SnapshotUse     SlotSnapshot = "use"     // use it in the current transaction
)

// SlotOptions configure CreateReplicationSlot.
type SlotOptions struct {
	Temporary bool
	Snapshot  SlotSnapshot // empty: SnapshotExport
}

// Slot is the result of CREATE_REPLICATION_SLOT.
type Slot struct {
	Name            string
	ConsistentPoint LSN
	SnapshotName    string // exported snapshot, valid until the next command on this connection
	OutputPlugin    string
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes an SQL string literal.
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// CreateReplicationSlot creates a logical slot using the pgoutput plugin.
func (c *ReplConn) CreateReplicationSlot(ctx context.Context, name string, opts SlotOptions) (Slot, error) {
	snap := opts.Snapshot
	if snap == "" {
		snap = SnapshotExport
	}
	var b strings.Builder
	b.WriteString("CREATE_REPLICATION_SLOT ")
	b.WriteString(quoteIdent(name))
	if opts.Temporary {
		b.WriteString(" TEMPORARY")
	}
	b.WriteString(" LOGICAL pgoutput (SNAPSHOT ")
	b.WriteString(quoteLiteral(string(snap)))
	b.WriteString(")")
	res, err := c.simpleQuery(ctx, b.String())
	if err != nil {
		return Slot{}, err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 4 {
		return Slot{}, fmt.Errorf("postgres: CREATE_REPLICATION_SLOT: unexpected result shape")
	}
	row := res.Rows[0]
	cp, err := ParseLSN(string(row[1]))
	if err != nil {
		return Slot{}, err
	}
	return Slot{Name: string(row[0]), ConsistentPoint: cp, SnapshotName: string(row[2]), OutputPlugin: string(row[3])}, nil
}

// DropReplicationSlot drops a slot, waiting for it to become inactive.
func (c *ReplConn) DropReplicationSlot(ctx context.Context, name string) error {
	_, err := c.simpleQuery(ctx, "DROP_REPLICATION_SLOT "+quoteIdent(name)+" WAIT")
	return err
}

// StartReplication runs START_REPLICATION for a pgoutput slot (protocol
// version 1) and enters the CopyBoth stream. start 0 means the slot's
// confirmed flush position.
func (c *ReplConn) StartReplication(ctx context.Context, slot string, start LSN, publications []string) error {
	if len(publications) == 0 {
		return errors.New("postgres: StartReplication: no publication")
	}
	quoted := make([]string, len(publications))
	for i, p := range publications {
		quoted[i] = quoteIdent(p)
	}
	sql := fmt.Sprintf("START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names %s)",
		quoteIdent(slot), start, quoteLiteral(strings.Join(quoted, ",")))
	c.conn.Frontend().Send(&pgproto3.Query{String: sql})
	if err := c.conn.Frontend().Flush(); err != nil {
		return err
	}
	for {
		msg, err := c.conn.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyBothResponse:
			return nil
		case *pgproto3.ErrorResponse:
			err := pgconn.ErrorResponseToPgError(m)
			// Drain until ReadyForQuery so the connection stays usable.
			for {
				msg, rerr := c.conn.ReceiveMessage(ctx)
				if rerr != nil {
					return errors.Join(err, rerr)
				}
				if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
					return err
				}
			}
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return fmt.Errorf("postgres: START_REPLICATION: unexpected message %T", msg)
		}
	}
}

// XLogData is a chunk of WAL data: one pgoutput message.
type XLogData struct {
	WALStart   LSN
	ServerWAL  LSN // current end of WAL on the server
	ServerTime time.Time
	Data       []byte
}

// PrimaryKeepalive is the server's keepalive.
type PrimaryKeepalive struct {
	ServerWAL      LSN
	ServerTime     time.Time
	ReplyRequested bool
}

// ErrCopyDone is returned when the server ends the CopyBoth stream.
var ErrCopyDone = errors.New("postgres: replication stream ended by server")

// ParseCopyData decodes a CopyData payload of the replication stream into an
// *XLogData or a *PrimaryKeepalive.
func ParseCopyData(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, errors.New("postgres: empty CopyData")
	}
	switch b[0] {
	case 'w':
		if len(b) < 25 {
			return nil, fmt.Errorf("postgres: XLogData of %d bytes", len(b))
		}
		return &XLogData{
			WALStart:   LSN(binary.BigEndian.Uint64(b[1:])),
			ServerWAL:  LSN(binary.BigEndian.Uint64(b[9:])),
			ServerTime: pgTime(int64(binary.BigEndian.Uint64(b[17:]))),
			Data:       b[25:],
		}, nil
	case 'k':
		if len(b) != 18 {
			return nil, fmt.Errorf("postgres: keepalive of %d bytes", len(b))
		}
		return &PrimaryKeepalive{
			ServerWAL:      LSN(binary.BigEndian.Uint64(b[1:])),
			ServerTime:     pgTime(int64(binary.BigEndian.Uint64(b[9:]))),
			ReplyRequested: b[17] != 0,
		}, nil
	default:
		return nil, fmt.Errorf("postgres: unknown replication message %q", b[0])
	}
}

// ReceiveMessage reads the next message of the CopyBoth stream: an *XLogData
// or a *PrimaryKeepalive. The returned data is valid until the next call.
func (c *ReplConn) ReceiveMessage(ctx context.Context) (any, error) {
	for {
		msg, err := c.conn.ReceiveMessage(ctx)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			return ParseCopyData(m.Data)
		case *pgproto3.ErrorResponse:
			return nil, pgconn.ErrorResponseToPgError(m)
		case *pgproto3.CopyDone:
			return nil, ErrCopyDone
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return nil, fmt.Errorf("postgres: replication stream: unexpected message %T", msg)
		}
	}
}

// StandbyStatus is a Standby Status Update. Write, Flush and Apply are the
// positions (last byte + 1) received, durably stored and applied.
type StandbyStatus struct {
	Write, Flush, Apply LSN
	ClientTime          time.Time // zero: now
	ReplyRequested      bool
}

// EncodeStandbyStatus encodes the CopyData payload of a Standby Status Update.
func EncodeStandbyStatus(s StandbyStatus) []byte {
	if s.ClientTime.IsZero() {
		s.ClientTime = time.Now()
	}
	b := make([]byte, 34)
	b[0] = 'r'
	binary.BigEndian.PutUint64(b[1:], uint64(s.Write))
	binary.BigEndian.PutUint64(b[9:], uint64(s.Flush))
	binary.BigEndian.PutUint64(b[17:], uint64(s.Apply))
	binary.BigEndian.PutUint64(b[25:], uint64(toPgTime(s.ClientTime)))
	if s.ReplyRequested {
		b[33] = 1
	}
	return b
}

// SendStandbyStatus sends a Standby Status Update.
func (c *ReplConn) SendStandbyStatus(ctx context.Context, s StandbyStatus) error {
	c.conn.Frontend().Send(&pgproto3.CopyData{Data: EncodeStandbyStatus(s)})
	return c.conn.Frontend().Flush()
}

// Stream reads a started replication stream: it decodes pgoutput messages,
// answers keepalives that request a reply and sends a status update at least
// every StatusInterval. Flush positions advance only through Ack.
type Stream struct {
	conn           *ReplConn
	StatusInterval time.Duration
	// AdvanceWhenIdle lets the flush position follow the server's position
	// while nothing is pending: between transactions, with the last commit
	// acknowledged, a keepalive's WAL position is confirmed (everything
	// before it was sent, and none of it is waiting to be made durable), so
	// the slot does not hold WAL that only other tables' changes filled.
	// Periodic status updates then ask the server for a keepalive.
	AdvanceWhenIdle bool
	// OnPosition, if set, is called on the reading goroutine whenever a
	// status update is sent or a keepalive arrives, with the flush position
	// and the server's WAL end (for lag metrics while no change arrives).
	OnPosition func(flushed, serverWAL LSN)
	received   LSN // highest WAL position received (end of last XLogData)
	flushed    LSN // acknowledged by Ack
	serverWAL  LSN // the server's WAL end, as of its last message
	lastStatus time.Time
	inTxn      bool // a Begin was returned and its Commit not yet
	lastCommit LSN  // EndLSN of the last Commit returned
}

// NewStream wraps a connection on which StartReplication succeeded. start is
// the position replication started from (the initial flush position).
func NewStream(conn *ReplConn, start LSN) *Stream {
	return &Stream{conn: conn, StatusInterval: 10 * time.Second, received: start, flushed: start, lastStatus: time.Now()}
}

// Change is one decoded pgoutput message with the WAL position it came at.
type Change struct {
	WALStart LSN
	Message  Message
}

// Ack records that everything up to lsn (a CommitMessage's EndLSN) is
// durable and sends a status update reporting it as flushed and applied.
func (s *Stream) Ack(ctx context.Context, lsn LSN) error {
	if lsn > s.flushed {
		s.flushed = lsn
	}
	if s.flushed > s.received {
		s.received = s.flushed
	}
	return s.sendStatus(ctx, false)
}

// Flushed returns the acknowledged position.
func (s *Stream) Flushed() LSN { return s.flushed }

// ServerWAL returns the server's WAL end as of its last message (0 before
// the first).
func (s *Stream) ServerWAL() LSN { return s.serverWAL }

// idle reports whether nothing received waits for an acknowledgement.
func (s *Stream) idle() bool { return !s.inTxn && s.flushed >= s.lastCommit }

func (s *Stream) sendStatus(ctx context.Context, reply bool) error {
	s.lastStatus = time.Now()
	if s.OnPosition != nil {
		s.OnPosition(s.flushed, s.serverWAL)
	}
	return s.conn.SendStandbyStatus(ctx, StandbyStatus{Write: s.received, Flush: s.flushed, Apply: s.flushed, ReplyRequested: reply})
}

// Next returns the next pgoutput message. Its byte slices are copies and stay
// valid.
func (s *Stream) Next(ctx context.Context) (Change, error) {
	for {
		if time.Since(s.lastStatus) >= s.StatusInterval {
			// When idle, ask for a keepalive: its position is what the
			// flush position may advance to.
			if err := s.sendStatus(ctx, s.AdvanceWhenIdle && s.idle()); err != nil {
				return Change{}, err
			}
		}
		rctx, cancel := context.WithDeadline(ctx, s.lastStatus.Add(s.StatusInterval))
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && pgconn.Timeout(err) && !s.conn.conn.IsClosed() {
				continue // status interval elapsed; send an update
			}
			return Change{}, err
		}
		switch m := msg.(type) {
		case *PrimaryKeepalive:
			s.serverWAL = max(s.serverWAL, m.ServerWAL)
			if s.OnPosition != nil {
				s.OnPosition(s.flushed, s.serverWAL)
			}
			if s.AdvanceWhenIdle && s.idle() && m.ServerWAL > s.flushed {
				s.flushed = m.ServerWAL
				s.received = max(s.received, s.flushed)
				if err := s.sendStatus(ctx, false); err != nil {
					return Change{}, err
				}
				continue
			}
			if m.ReplyRequested {
				if err := s.sendStatus(ctx, false); err != nil {
					return Change{}, err
				}
			}
		case *XLogData:
			if end := m.WALStart + LSN(len(m.Data)); end > s.received {
				s.received = end
			}
			data := append([]byte(nil), m.Data...)
			dm, err := Decode(data)
			if err != nil {
				return Change{}, err
			}
			s.serverWAL = max(s.serverWAL, m.ServerWAL)
			switch c := dm.(type) {
			case *BeginMessage:
				s.inTxn = true
			case *CommitMessage:
				s.inTxn = false
				s.lastCommit = max(s.lastCommit, c.EndLSN)
			}
			return Change{WALStart: m.WALStart, Message: dm}, nil
		}
	}
}
