package state

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// The cursors table holds the acknowledgement state of shared subscriptions
// (queues), per subscription ID and partition:
//
//	0x30 0x01  string(sub) partition(4) 'F'             -> floor int64
//	0x30 0x01  string(sub) partition(4) 'A' offset(8)   -> (empty): acked above the floor
//	0x30 0x01  string(sub) partition(4) 'D' offset(8)   -> deliveries int32, last error
//
// Every offset below the floor is settled (acknowledged, dead-lettered,
// expired or filtered out). An 'A' key marks one settled offset above it; a
// 'D' key records how often an unsettled record was delivered. The broker
// removes the 'A' and 'D' keys below a new floor in the transaction that
// raises it.

var cursorsTable = table{name: "cursors", prefix: 0x30, version: 1}

const (
	cursorFloor    = 'F'
	cursorAcked    = 'A'
	cursorDelivery = 'D'
)

// Delivery is the delivery state of one unsettled record.
type Delivery struct {
	Count     int32
	LastError string
}

// CursorState is the stored state of one partition of a shared
// subscription.
type CursorState struct {
	Floor      int64
	Acked      []int64            // settled offsets above Floor, ascending
	Deliveries map[int64]Delivery // unsettled records delivered at least once
}

func cursorPrefix(sub string, partition int32, extra int) []byte {
	k := appendString(cursorsTable.key(encodedStringLen(sub)+4+extra), sub)
	return appendPartition(k, partition)
}

func cursorKey(sub string, partition int32, kind byte, offset int64, withOffset bool) []byte {
	k := append(cursorPrefix(sub, partition, 9), kind)
	if withOffset {
		k = binary.BigEndian.AppendUint64(k, uint64(offset))
	}
	return k
}

// LoadCursor reads the stored state of one partition of a shared
// subscription (a zero state when nothing was stored).
func (s *Store) LoadCursor(sub string, partition int32) (CursorState, error) {
	st := CursorState{Deliveries: make(map[int64]Delivery)}
	if err := checkName("subscription", sub); err != nil {
		return st, err
	}
	if err := s.life.enter(); err != nil {
		return st, err
	}
	defer s.life.leave()
	prefix := cursorPrefix(sub, partition, 0)
	err := s.scan(prefix, func(key, value []byte) error {
		rest := key[len(prefix):]
		if len(rest) == 0 {
			return fmt.Errorf("%w: cursor key without a kind", ErrCorrupt)
		}
		switch rest[0] {
		case cursorFloor:
			if len(value) != 8 {
				return fmt.Errorf("%w: cursor floor of %d bytes", ErrCorrupt, len(value))
			}
			st.Floor = int64(binary.BigEndian.Uint64(value))
		case cursorAcked, cursorDelivery:
			if len(rest) != 9 {
				return fmt.Errorf("%w: cursor key of %d bytes", ErrCorrupt, len(rest))
			}
			off := int64(binary.BigEndian.Uint64(rest[1:]))
			if rest[0] == cursorAcked {
				st.Acked = append(st.Acked, off)
				return nil
			}
			if len(value) < 4 {
				return fmt.Errorf("%w: delivery value of %d bytes", ErrCorrupt, len(value))
			}
			st.Deliveries[off] = Delivery{Count: int32(binary.BigEndian.Uint32(value)), LastError: string(value[4:])}
		default:
			return fmt.Errorf("%w: cursor key kind %q", ErrCorrupt, rest[0])
		}
		return nil
	})
	sort.Slice(st.Acked, func(i, j int) bool { return st.Acked[i] < st.Acked[j] })
	return st, err
}

// SetCursorFloor records that every offset below floor is settled, and
// forgets the acks and deliveries stored in [from, floor): from is the
// lowest offset at which the caller stored a key since it last set the
// floor (it knows: it wrote them).
//
// Taking from rather than reading the stored floor keeps the state store's
// hot path free of reads: a read fragments every range deletion of the
// memtable (Pebble does that for each new iterator or Get), and a busy
// queue writes one per floor raise past out-of-order acks. The ranges
// start at the lowest key, not at offset 0, for the same reason: range
// deletions that all began at the partition's first key overlapped one
// another, and n overlapping ones fragment into O(n²) pieces — the heap
// growth of the load campaign (docs/RELIABILITY.md).
func (tx *Tx) SetCursorFloor(sub string, partition int32, from, floor int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("subscription", sub); err != nil {
		return err
	}
	for _, kind := range []byte{cursorAcked, cursorDelivery} {
		if from >= floor {
			break // nothing stored below the new floor
		}
		lo := cursorKey(sub, partition, kind, max(from, 0), true)
		hi := cursorKey(sub, partition, kind, floor, true)
		if err := tx.deleteRange(lo, hi); err != nil {
			return err
		}
	}
	return tx.MoveCursorFloor(sub, partition, floor)
}

// MoveCursorFloor records floor as SetCursorFloor does but leaves the keys
// below it alone, for a caller that knows it wrote none there since the
// last SetCursorFloor: every range deletion stays in the memtable until a
// flush, and each new iterator of the store fragments them all again, so a
// queue that moved its floor with one per commit made every later read
// slower and the heap larger.
func (tx *Tx) MoveCursorFloor(sub string, partition int32, floor int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("subscription", sub); err != nil {
		return err
	}
	return tx.set(cursorKey(sub, partition, cursorFloor, 0, false), binary.BigEndian.AppendUint64(nil, uint64(floor)))
}

// AckCursor records one settled offset above the floor. A delivery record
// of that offset, if one was written, goes with DeleteDelivery.
func (tx *Tx) AckCursor(sub string, partition int32, offset int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("subscription", sub); err != nil {
		return err
	}
	return tx.set(cursorKey(sub, partition, cursorAcked, offset, true), nil)
}

// DeleteDelivery deletes the delivery record of an offset.
func (tx *Tx) DeleteDelivery(sub string, partition int32, offset int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("subscription", sub); err != nil {
		return err
	}
	return tx.delete(cursorKey(sub, partition, cursorDelivery, offset, true))
}

// SetDelivery records the delivery state of an unsettled record.
func (tx *Tx) SetDelivery(sub string, partition int32, offset int64, d Delivery) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("subscription", sub); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(d.LastError)), uint32(d.Count))
	return tx.set(cursorKey(sub, partition, cursorDelivery, offset, true), append(v, d.LastError...))
}

// DeleteCursors deletes every partition's state of a subscription.
func (tx *Tx) DeleteCursors(sub string) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("subscription", sub); err != nil {
		return err
	}
	return tx.deletePrefix(appendString(cursorsTable.key(encodedStringLen(sub)), sub))
}
