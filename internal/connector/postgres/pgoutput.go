package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Message is one decoded pgoutput message (protocol version 1).
type Message interface{ pgoutputMessage() }

// BeginMessage starts a transaction.
type BeginMessage struct {
	FinalLSN   LSN // LSN of the transaction's commit record
	CommitTime time.Time
	Xid        uint32
}

// CommitMessage ends a transaction.
type CommitMessage struct {
	Flags      uint8
	CommitLSN  LSN // LSN of the commit record
	EndLSN     LSN // end of the transaction's WAL; acknowledge this as flushed
	CommitTime time.Time
}

// OriginMessage names the replication origin of the transaction.
type OriginMessage struct {
	CommitLSN LSN
	Name      string
}

// RelationColumn describes one column of a RelationMessage.
type RelationColumn struct {
	Flags        uint8 // 1: part of the key (replica identity)
	Name         string
	TypeOID      uint32
	TypeModifier int32
}

// IsKey reports whether the column is part of the replica identity.
func (c RelationColumn) IsKey() bool { return c.Flags&1 != 0 }

// RelationMessage describes a table; it precedes the first change of the
// table in a session and is sent again when the table's shape changes.
type RelationMessage struct {
	RelationID      uint32
	Namespace       string
	Name            string
	ReplicaIdentity uint8 // 'd' default, 'n' nothing, 'f' full, 'i' index
	Columns         []RelationColumn
}

// TypeMessage describes a non-built-in data type used by a relation.
type TypeMessage struct {
	TypeOID   uint32
	Namespace string
	Name      string
}

// Tuple column kinds.
const (
	ColumnNull      byte = 'n' // the value is NULL
	ColumnUnchanged byte = 'u' // an unchanged TOASTed value; the value is not sent
	ColumnText      byte = 't' // text format value
	ColumnBinary    byte = 'b' // binary format value
)

// TupleColumn is one column value of a tuple.
type TupleColumn struct {
	Kind byte // ColumnNull, ColumnUnchanged, ColumnText or ColumnBinary
	Data []byte
}

// Tuple is a row image.
type Tuple []TupleColumn

// InsertMessage is an inserted row.
type InsertMessage struct {
	RelationID uint32
	New        Tuple
}

// UpdateMessage is an updated row. OldKind is 'K' (Old holds the old key
// columns, when the key changed), 'O' (Old holds the whole old row, with
// REPLICA IDENTITY FULL) or 0 (no old image).
type UpdateMessage struct {
	RelationID uint32
	OldKind    byte
	Old        Tuple
	New        Tuple
}

// DeleteMessage is a deleted row; OldKind is 'K' or 'O' as for updates.
type DeleteMessage struct {
	RelationID uint32
	OldKind    byte
	Old        Tuple
}

// Truncate options.
const (
	TruncateCascade         uint8 = 1
	TruncateRestartIdentity uint8 = 2
)

// TruncateMessage is a TRUNCATE of one or more relations.
type TruncateMessage struct {
	Options     uint8
	RelationIDs []uint32
}

// LogicalMessage is a message written with pg_logical_emit_message.
type LogicalMessage struct {
	Flags   uint8 // 1: transactional
	LSN     LSN
	Prefix  string
	Content []byte
}

func (*BeginMessage) pgoutputMessage()    {}
func (*CommitMessage) pgoutputMessage()   {}
func (*OriginMessage) pgoutputMessage()   {}
func (*RelationMessage) pgoutputMessage() {}
func (*TypeMessage) pgoutputMessage()     {}
func (*InsertMessage) pgoutputMessage()   {}
func (*UpdateMessage) pgoutputMessage()   {}
func (*DeleteMessage) pgoutputMessage()   {}
func (*TruncateMessage) pgoutputMessage() {}
func (*LogicalMessage) pgoutputMessage()  {}

// ErrTruncated is returned for a message shorter than its contents claim.
var ErrTruncated = errors.New("postgres: truncated pgoutput message")

// maxColumns bounds column counts (PostgreSQL allows at most 1664 columns in a
// tuple); it keeps a corrupt count from allocating huge slices.
const maxColumns = 1664

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail(ErrTruncated)
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.fail(fmt.Errorf("%w: unterminated string", ErrTruncated))
	r.b = nil
	return ""
}

func (r *reader) tuple() Tuple {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n > maxColumns {
		r.fail(fmt.Errorf("postgres: pgoutput tuple with %d columns", n))
		return nil
	}
	t := make(Tuple, n)
	for i := range t {
		kind := r.u8()
		switch kind {
		case ColumnNull, ColumnUnchanged:
			t[i] = TupleColumn{Kind: kind}
		case ColumnText, ColumnBinary:
			l := r.u32()
			if l > uint32(len(r.b)) {
				r.fail(ErrTruncated)
				return nil
			}
			t[i] = TupleColumn{Kind: kind, Data: r.take(int(l))}
		default:
			r.fail(fmt.Errorf("postgres: unknown tuple column kind %q", kind))
		}
		if r.err != nil {
			return nil
		}
	}
	return t
}

// Decode decodes one pgoutput message (the payload of an XLogData message).
// Byte slices in the result alias data.
func Decode(data []byte) (Message, error) {
	if len(data) == 0 {
		return nil, ErrTruncated
	}
	r := &reader{b: data[1:]}
	var m Message
	switch data[0] {
	case 'B':
		m = &BeginMessage{FinalLSN: LSN(r.u64()), CommitTime: pgTime(int64(r.u64())), Xid: r.u32()}
	case 'C':
		m = &CommitMessage{Flags: r.u8(), CommitLSN: LSN(r.u64()), EndLSN: LSN(r.u64()), CommitTime: pgTime(int64(r.u64()))}
	case 'O':
		m = &OriginMessage{CommitLSN: LSN(r.u64()), Name: r.str()}
	case 'R':
		rel := &RelationMessage{RelationID: r.u32(), Namespace: r.str(), Name: r.str(), ReplicaIdentity: r.u8()}
		n := int(r.u16())
		if r.err == nil && n > maxColumns {
			r.fail(fmt.Errorf("postgres: pgoutput relation with %d columns", n))
		}
		if r.err == nil {
			rel.Columns = make([]RelationColumn, n)
			for i := range rel.Columns {
				rel.Columns[i] = RelationColumn{Flags: r.u8(), Name: r.str(), TypeOID: r.u32(), TypeModifier: int32(r.u32())}
			}
		}
		m = rel
	case 'Y':
		m = &TypeMessage{TypeOID: r.u32(), Namespace: r.str(), Name: r.str()}
	case 'I':
		ins := &InsertMessage{RelationID: r.u32()}
		if k := r.u8(); r.err == nil && k != 'N' {
			r.fail(fmt.Errorf("postgres: insert: expected 'N', got %q", k))
		}
		ins.New = r.tuple()
		m = ins
	case 'U':
		up := &UpdateMessage{RelationID: r.u32()}
		k := r.u8()
		if k == 'K' || k == 'O' {
			up.OldKind = k
			up.Old = r.tuple()
			k = r.u8()
		}
		if r.err == nil && k != 'N' {
			r.fail(fmt.Errorf("postgres: update: expected 'N', got %q", k))
		}
		up.New = r.tuple()
		m = up
	case 'D':
		del := &DeleteMessage{RelationID: r.u32()}
		k := r.u8()
		if r.err == nil && k != 'K' && k != 'O' {
			r.fail(fmt.Errorf("postgres: delete: expected 'K' or 'O', got %q", k))
		}
		del.OldKind = k
		del.Old = r.tuple()
		m = del
	case 'T':
		n := r.u32()
		tr := &TruncateMessage{Options: r.u8()}
		if r.err == nil && uint64(n)*4 > uint64(len(r.b)) {
			r.fail(ErrTruncated)
		}
		if r.err == nil {
			tr.RelationIDs = make([]uint32, n)
			for i := range tr.RelationIDs {
				tr.RelationIDs[i] = r.u32()
			}
		}
		m = tr
	case 'M':
		lm := &LogicalMessage{Flags: r.u8(), LSN: LSN(r.u64()), Prefix: r.str()}
		l := r.u32()
		if r.err == nil && l > uint32(len(r.b)) {
			r.fail(ErrTruncated)
		}
		lm.Content = r.take(int(l))
		m = lm
	default:
		return nil, fmt.Errorf("postgres: unknown pgoutput message type %q", data[0])
	}
	if r.err != nil {
		return nil, fmt.Errorf("postgres: decoding pgoutput %q message: %w", data[0], r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("postgres: pgoutput %q message has %d trailing bytes", data[0], len(r.b))
	}
	return m, nil
}
