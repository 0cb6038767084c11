package postgres

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// msg builds a protocol message by hand.
type msg []byte

func (m msg) u8(v uint8) msg   { return append(m, v) }
func (m msg) u16(v uint16) msg { return binary.BigEndian.AppendUint16(m, v) }
func (m msg) u32(v uint32) msg { return binary.BigEndian.AppendUint32(m, v) }
func (m msg) u64(v uint64) msg { return binary.BigEndian.AppendUint64(m, v) }
func (m msg) str(s string) msg { return append(append(m, s...), 0) }
func (m msg) text(s string) msg {
	return append(m.u8('t').u32(uint32(len(s))), s...)
}

var commitTime = time.Date(2026, 11, 22, 12, 0, 0, 123456000, time.UTC)

func micros(t time.Time) uint64 { return uint64(toPgTime(t)) }

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   msg
		want Message
	}{
		{"begin", msg{'B'}.u64(0x1_0000_0010).u64(micros(commitTime)).u32(742),
			&BeginMessage{FinalLSN: 0x1_0000_0010, CommitTime: commitTime, Xid: 742}},
		{"commit", msg{'C'}.u8(0).u64(0x16B3748).u64(0x16B3778).u64(micros(commitTime)),
			&CommitMessage{CommitLSN: 0x16B3748, EndLSN: 0x16B3778, CommitTime: commitTime}},
		{"origin", msg{'O'}.u64(99).str("node_a"), &OriginMessage{CommitLSN: 99, Name: "node_a"}},
		{"relation", msg{'R'}.u32(16384).str("public").str("items").u8('f').u16(2).
			u8(1).str("id").u32(23).u32(0xFFFFFFFF).
			u8(0).str("name").u32(1043).u32(68),
			&RelationMessage{RelationID: 16384, Namespace: "public", Name: "items", ReplicaIdentity: 'f',
				Columns: []RelationColumn{{Flags: 1, Name: "id", TypeOID: 23, TypeModifier: -1}, {Name: "name", TypeOID: 1043, TypeModifier: 68}}}},
		{"relation no columns", msg{'R'}.u32(1).str("s").str("t").u8('n').u16(0),
			&RelationMessage{RelationID: 1, Namespace: "s", Name: "t", ReplicaIdentity: 'n', Columns: []RelationColumn{}}},
		{"type", msg{'Y'}.u32(70000).str("public").str("mood"), &TypeMessage{TypeOID: 70000, Namespace: "public", Name: "mood"}},
		{"insert", msg{'I'}.u32(16384).u8('N').u16(4).text("1").u8('n').u8('u').text(""),
			&InsertMessage{RelationID: 16384, New: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'n'}, {Kind: 'u'}, {Kind: 't', Data: []byte{}}}}},
		{"insert binary column", msg{'I'}.u32(5).u8('N').u16(1).u8('b').u32(2).u8(0xCA).u8(0xFE),
			&InsertMessage{RelationID: 5, New: Tuple{{Kind: 'b', Data: []byte{0xCA, 0xFE}}}}},
		{"update no old", msg{'U'}.u32(7).u8('N').u16(2).text("1").u8('u'),
			&UpdateMessage{RelationID: 7, New: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'u'}}}},
		{"update old key", msg{'U'}.u32(7).u8('K').u16(2).text("1").u8('n').u8('N').u16(2).text("2").text("x"),
			&UpdateMessage{RelationID: 7, OldKind: 'K', Old: Tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'n'}},
				New: Tuple{{Kind: 't', Data: []byte("2")}, {Kind: 't', Data: []byte("x")}}}},
		{"update old row", msg{'U'}.u32(7).u8('O').u16(1).text("a").u8('N').u16(1).text("b"),
			&UpdateMessage{RelationID: 7, OldKind: 'O', Old: Tuple{{Kind: 't', Data: []byte("a")}}, New: Tuple{{Kind: 't', Data: []byte("b")}}}},
		{"delete key", msg{'D'}.u32(8).u8('K').u16(2).text("42").u8('n'),
			&DeleteMessage{RelationID: 8, OldKind: 'K', Old: Tuple{{Kind: 't', Data: []byte("42")}, {Kind: 'n'}}}},
		{"delete full", msg{'D'}.u32(8).u8('O').u16(1).text("x"),
			&DeleteMessage{RelationID: 8, OldKind: 'O', Old: Tuple{{Kind: 't', Data: []byte("x")}}}},
		{"truncate", msg{'T'}.u32(2).u8(TruncateCascade | TruncateRestartIdentity).u32(16384).u32(16390),
			&TruncateMessage{Options: 3, RelationIDs: []uint32{16384, 16390}}},
		{"logical message", msg{'M'}.u8(1).u64(500).str("weir").u32(3).u8('a').u8('b').u8('c'),
			&LogicalMessage{Flags: 1, LSN: 500, Prefix: "weir", Content: []byte("abc")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decode = %#v\nwant     %#v", got, tt.want)
			}
			// Every strict prefix is an error, never a panic or a result.
			for i := 0; i < len(tt.in); i++ {
				if m, err := Decode(tt.in[:i]); err == nil {
					t.Fatalf("prefix of %d bytes decoded as %#v", i, m)
				}
			}
			// Trailing bytes are an error.
			if _, err := Decode(append(append(msg{}, tt.in...), 0)); err == nil {
				t.Fatal("trailing byte accepted")
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   msg
		want string
	}{
		{"empty", msg{}, "truncated"},
		{"unknown type", msg{'Z'}, "unknown pgoutput message type"},
		{"bad column kind", msg{'I'}.u32(1).u8('N').u16(1).u8('x'), "unknown tuple column kind"},
		{"insert without N", msg{'I'}.u32(1).u8('K').u16(0), "expected 'N'"},
		{"update bad marker", msg{'U'}.u32(1).u8('Q').u16(0), "expected 'N'"},
		{"delete bad marker", msg{'D'}.u32(1).u8('N').u16(0), "expected 'K' or 'O'"},
		{"text length too long", msg{'I'}.u32(1).u8('N').u16(1).u8('t').u32(10).u8('a'), "truncated"},
		{"text length huge", msg{'I'}.u32(1).u8('N').u16(1).u8('t').u32(0xFFFFFFFF), "truncated"},
		{"too many columns", msg{'I'}.u32(1).u8('N').u16(5000), "columns"},
		{"truncate count huge", msg{'T'}.u32(0xFFFFFFFF).u8(0).u32(1), "truncated"},
		{"unterminated string", msg{'Y'}.u32(1).u8('a'), "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode = %#v, %v; want error containing %q", m, err, tt.want)
			}
		})
	}
	if _, err := Decode(msg{'B'}.u64(1)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short begin: %v, want ErrTruncated", err)
	}
}

func TestLSN(t *testing.T) {
	for _, tt := range []struct {
		s string
		l LSN
	}{{"0/0", 0}, {"0/16B3748", 0x16B3748}, {"1/0", 1 << 32}, {"FFFFFFFF/FFFFFFFF", ^LSN(0)}} {
		if got := tt.l.String(); got != tt.s {
			t.Errorf("%d.String() = %q, want %q", uint64(tt.l), got, tt.s)
		}
		if got, err := ParseLSN(tt.s); err != nil || got != tt.l {
			t.Errorf("ParseLSN(%q) = %v, %v", tt.s, got, err)
		}
	}
	for _, bad := range []string{"", "16B3748", "x/1", "1/x", "100000000/0"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}

func TestCopyData(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	x, err := ParseCopyData(msg{'w'}.u64(10).u64(20).u64(micros(now)).u8('B'))
	if err != nil {
		t.Fatal(err)
	}
	if want := (&XLogData{WALStart: 10, ServerWAL: 20, ServerTime: now, Data: []byte("B")}); !reflect.DeepEqual(x, want) {
		t.Fatalf("XLogData = %#v", x)
	}
	k, err := ParseCopyData(msg{'k'}.u64(30).u64(micros(now)).u8(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := (&PrimaryKeepalive{ServerWAL: 30, ServerTime: now, ReplyRequested: true}); !reflect.DeepEqual(k, want) {
		t.Fatalf("keepalive = %#v", k)
	}
	for _, bad := range []msg{{}, {'w', 1}, msg{'k'}.u64(1), {'q'}} {
		if _, err := ParseCopyData(bad); err == nil {
			t.Errorf("ParseCopyData(%x) accepted", bad)
		}
	}
	got := EncodeStandbyStatus(StandbyStatus{Write: 3, Flush: 2, Apply: 1, ClientTime: now, ReplyRequested: true})
	want := msg{'r'}.u64(3).u64(2).u64(1).u64(micros(now)).u8(1)
	if !reflect.DeepEqual([]byte(got), []byte(want)) {
		t.Fatalf("standby status = %x, want %x", got, want)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(msg{'B'}.u64(1).u64(2).u32(3)))
	f.Add([]byte(msg{'C'}.u8(0).u64(1).u64(2).u64(3)))
	f.Add([]byte(msg{'R'}.u32(1).str("public").str("t").u8('d').u16(1).u8(1).str("id").u32(23).u32(0)))
	f.Add([]byte(msg{'I'}.u32(1).u8('N').u16(3).text("1").u8('n').u8('u')))
	f.Add([]byte(msg{'U'}.u32(1).u8('O').u16(1).text("a").u8('N').u16(1).text("b")))
	f.Add([]byte(msg{'D'}.u32(1).u8('K').u16(1).text("a")))
	f.Add([]byte(msg{'T'}.u32(1).u8(1).u32(5)))
	f.Add([]byte(msg{'Y'}.u32(1).str("a").str("b")))
	f.Add([]byte(msg{'O'}.u64(1).str("o")))
	f.Add([]byte(msg{'M'}.u8(1).u64(1).str("p").u32(1).u8('x')))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if (m == nil) == (err == nil) {
			t.Fatalf("Decode = %#v, %v", m, err)
		}
		if err != nil {
			return
		}
		// A decoded message re-encodes to the same bytes.
		if got := encodeForTest(m); !reflect.DeepEqual(got, data) {
			t.Fatalf("re-encoded %x, input %x", got, data)
		}
	})
}

// encodeForTest is the inverse of Decode, used to check the decoder against
// arbitrary input.
func encodeForTest(m Message) []byte {
	tuple := func(b msg, t Tuple) msg {
		b = b.u16(uint16(len(t)))
		for _, c := range t {
			b = b.u8(c.Kind)
			if c.Kind == ColumnText || c.Kind == ColumnBinary {
				b = append(b.u32(uint32(len(c.Data))), c.Data...)
			}
		}
		return b
	}
	switch m := m.(type) {
	case *BeginMessage:
		return msg{'B'}.u64(uint64(m.FinalLSN)).u64(micros(m.CommitTime)).u32(m.Xid)
	case *CommitMessage:
		return msg{'C'}.u8(m.Flags).u64(uint64(m.CommitLSN)).u64(uint64(m.EndLSN)).u64(micros(m.CommitTime))
	case *OriginMessage:
		return msg{'O'}.u64(uint64(m.CommitLSN)).str(m.Name)
	case *RelationMessage:
		b := msg{'R'}.u32(m.RelationID).str(m.Namespace).str(m.Name).u8(m.ReplicaIdentity).u16(uint16(len(m.Columns)))
		for _, c := range m.Columns {
			b = b.u8(c.Flags).str(c.Name).u32(c.TypeOID).u32(uint32(c.TypeModifier))
		}
		return b
	case *TypeMessage:
		return msg{'Y'}.u32(m.TypeOID).str(m.Namespace).str(m.Name)
	case *InsertMessage:
		return tuple(msg{'I'}.u32(m.RelationID).u8('N'), m.New)
	case *UpdateMessage:
		b := msg{'U'}.u32(m.RelationID)
		if m.OldKind != 0 {
			b = tuple(b.u8(m.OldKind), m.Old)
		}
		return tuple(b.u8('N'), m.New)
	case *DeleteMessage:
		return tuple(msg{'D'}.u32(m.RelationID).u8(m.OldKind), m.Old)
	case *TruncateMessage:
		b := msg{'T'}.u32(uint32(len(m.RelationIDs))).u8(m.Options)
		for _, id := range m.RelationIDs {
			b = b.u32(id)
		}
		return b
	case *LogicalMessage:
		return append(msg{'M'}.u8(m.Flags).u64(uint64(m.LSN)).str(m.Prefix).u32(uint32(len(m.Content))), m.Content...)
	}
	panic("unknown message")
}
