package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// OffsetKey identifies one committed offset: a consumer group's position on
// one partition of a stream.
type OffsetKey struct {
	Group     string
	Stream    string
	Partition int32
}

// CommittedOffset is what a consumer group committed for one partition.
type CommittedOffset struct {
	// Offset is the next offset the group will consume.
	Offset int64
	// LeaderEpoch is the leader epoch the client saw (Kafka); -1 if unknown.
	LeaderEpoch int32
	// Metadata is the client's free-form commit metadata.
	Metadata string
	// CommitTime is when the commit happened; the zero Time if unknown. It
	// is stored with nanosecond precision and read back in UTC.
	CommitTime time.Time
}

// GroupOffset is one committed offset of a group, as listed by ListOffsets.
type GroupOffset struct {
	Stream    string
	Partition int32
	Committed CommittedOffset
}

// offsetValueVersion is the layout version of the offset value.
const offsetValueVersion = 1

// offsetValueHeaderLen is the length of the offset value before the metadata:
// version, offset, leader epoch, commit time.
const offsetValueHeaderLen = 1 + 8 + 4 + 8

// zeroTimeNanos stands for the zero time.Time in an offset value.
const zeroTimeNanos = math.MinInt64

// The commit times representable in int64 Unix nanoseconds, zeroTimeNanos
// excluded.
var (
	minCommitTime = time.Unix(0, math.MinInt64+1)
	maxCommitTime = time.Unix(0, math.MaxInt64)
)

func groupPrefix(group string, extra int) []byte {
	return appendString(offsetsTable.key(encodedStringLen(group)+extra), group)
}

func groupStreamPrefix(group, stream string, extra int) []byte {
	return appendString(groupPrefix(group, encodedStringLen(stream)+extra), stream)
}

func offsetKey(k OffsetKey) []byte {
	return appendPartition(groupStreamPrefix(k.Group, k.Stream, 4), k.Partition)
}

func decodeOffsetKey(key []byte) (OffsetKey, error) {
	r, err := newKeyReader(key, offsetsTable)
	if err != nil {
		return OffsetKey{}, err
	}
	var k OffsetKey
	if k.Group, err = r.string(); err != nil {
		return OffsetKey{}, err
	}
	if k.Stream, err = r.string(); err != nil {
		return OffsetKey{}, err
	}
	if k.Partition, err = r.partition(); err != nil {
		return OffsetKey{}, err
	}
	return k, r.done()
}

func checkOffsetKey(k OffsetKey) error {
	if err := checkName("group", k.Group); err != nil {
		return err
	}
	return checkName("stream", k.Stream)
}

func encodeOffsetValue(c CommittedOffset) ([]byte, error) {
	nanos := int64(zeroTimeNanos)
	if !c.CommitTime.IsZero() {
		if c.CommitTime.Before(minCommitTime) || c.CommitTime.After(maxCommitTime) {
			return nil, fmt.Errorf("%w: commit time %v out of range", ErrInvalidOffset, c.CommitTime)
		}
		nanos = c.CommitTime.UnixNano()
	}
	v := make([]byte, 0, offsetValueHeaderLen+len(c.Metadata))
	v = append(v, offsetValueVersion)
	v = binary.BigEndian.AppendUint64(v, uint64(c.Offset))
	v = binary.BigEndian.AppendUint32(v, uint32(c.LeaderEpoch))
	v = binary.BigEndian.AppendUint64(v, uint64(nanos))
	return append(v, c.Metadata...), nil
}

func decodeOffsetValue(v []byte) (CommittedOffset, error) {
	if len(v) < offsetValueHeaderLen || v[0] != offsetValueVersion {
		return CommittedOffset{}, fmt.Errorf("%w: offset value %x", ErrCorrupt, v)
	}
	c := CommittedOffset{
		Offset:      int64(binary.BigEndian.Uint64(v[1:])),
		LeaderEpoch: int32(binary.BigEndian.Uint32(v[9:])),
		Metadata:    string(v[offsetValueHeaderLen:]),
	}
	if nanos := int64(binary.BigEndian.Uint64(v[13:])); nanos != zeroTimeNanos {
		c.CommitTime = time.Unix(0, nanos).UTC()
	}
	return c, nil
}

// GetOffset returns the committed offset for key, or an error satisfying
// errors.Is(err, ErrNotFound).
func (s *Store) GetOffset(key OffsetKey) (CommittedOffset, error) {
	if err := checkOffsetKey(key); err != nil {
		return CommittedOffset{}, err
	}
	if err := s.life.enter(); err != nil {
		return CommittedOffset{}, err
	}
	defer s.life.leave()
	v, err := s.get(offsetKey(key))
	if err != nil {
		return CommittedOffset{}, fmt.Errorf("offset of group %q on %s/%d: %w", key.Group, key.Stream, key.Partition, err)
	}
	return decodeOffsetValue(v)
}

// ListOffsets returns every committed offset of the group, sorted by stream
// name then partition. An unknown group has no offsets (and no error).
func (s *Store) ListOffsets(group string) ([]GroupOffset, error) {
	if err := checkName("group", group); err != nil {
		return nil, err
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	var offsets []GroupOffset
	err := s.scan(groupPrefix(group, 0), func(key, value []byte) error {
		k, err := decodeOffsetKey(key)
		if err != nil {
			return err
		}
		c, err := decodeOffsetValue(value)
		if err != nil {
			return err
		}
		offsets = append(offsets, GroupOffset{Stream: k.Stream, Partition: k.Partition, Committed: c})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return offsets, nil
}

// ListGroups returns the groups that have at least one committed offset, in
// name order. It reads one key per group, however many offsets each has.
func (s *Store) ListGroups() ([]string, error) {
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	var groups []string
	err := s.skipScanGroups(func(group string, _ []byte, _ *pebble.Iterator) error {
		groups = append(groups, group)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return groups, nil
}

// skipScanGroups calls fn once per group of the offsets table, in order, with
// the group's key prefix. fn may reposition the iterator; the scan then
// continues from the next group.
func (s *Store) skipScanGroups(fn func(group string, prefix []byte, iter *pebble.Iterator) error) error {
	table := offsetsTable.key(0)
	s.beforeRead()
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: table, UpperBound: prefixEnd(table)})
	if err != nil {
		return fmt.Errorf("state: scan: %w", err)
	}
	for valid := iter.First(); valid; {
		r, err := newKeyReader(iter.Key(), offsetsTable)
		var group string
		if err == nil {
			group, err = r.string()
		}
		if err == nil {
			prefix := groupPrefix(group, 0)
			err = fn(group, prefix, iter)
			valid = iter.SeekGE(prefixEnd(prefix))
		}
		if err != nil {
			_ = iter.Close()
			return err
		}
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("state: scan: %w", err)
	}
	return nil
}

// CommitOffset stores the committed offset for key, replacing the previous
// one.
func (tx *Tx) CommitOffset(key OffsetKey, c CommittedOffset) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkOffsetKey(key); err != nil {
		return err
	}
	v, err := encodeOffsetValue(c)
	if err != nil {
		return err
	}
	return tx.set(offsetKey(key), v)
}

// DeleteOffset deletes one committed offset (none is not an error).
func (tx *Tx) DeleteOffset(key OffsetKey) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkOffsetKey(key); err != nil {
		return err
	}
	return tx.delete(offsetKey(key))
}

// DeleteOffsets deletes every committed offset of the group, including those
// committed earlier in this transaction.
func (tx *Tx) DeleteOffsets(group string) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("group", group); err != nil {
		return err
	}
	return tx.deletePrefix(groupPrefix(group, 0))
}

// DeleteStreamOffsets deletes the committed offsets of every group on the
// stream, including those committed earlier in this transaction. From this
// call until the transaction ends, no other transaction can commit (see the
// package documentation), so the deletion is exact even while other
// goroutines commit offsets for the stream.
func (tx *Tx) DeleteStreamOffsets(stream string) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("stream", stream); err != nil {
		return err
	}
	tx.lockExclusive()
	groups, err := tx.store.groupsOnStream(stream)
	if err != nil {
		return err
	}
	pending, err := tx.pendingGroupsOnStream(stream)
	if err != nil {
		return err
	}
	groups = append(groups, pending...)
	slices.Sort(groups)
	for _, group := range slices.Compact(groups) {
		if err := tx.deletePrefix(groupStreamPrefix(group, stream, 0)); err != nil {
			return err
		}
	}
	return nil
}

// groupsOnStream returns the groups that have committed offsets on the stream.
func (s *Store) groupsOnStream(stream string) ([]string, error) {
	var groups []string
	err := s.skipScanGroups(func(group string, prefix []byte, iter *pebble.Iterator) error {
		streamPrefix := appendString(prefix, stream)
		if iter.SeekGE(streamPrefix) && bytes.HasPrefix(iter.Key(), streamPrefix) {
			groups = append(groups, group)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return groups, nil
}

// pendingGroupsOnStream returns the groups this transaction committed offsets
// for on the stream so far.
func (tx *Tx) pendingGroupsOnStream(stream string) ([]string, error) {
	var groups []string
	for r := tx.batch.Reader(); ; {
		kind, key, _, ok, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("state: read batch: %w", err)
		}
		if !ok {
			return groups, nil
		}
		if kind != pebble.InternalKeyKindSet || len(key) < 2 || key[0] != offsetsTable.prefix || key[1] != offsetsTable.version {
			continue
		}
		k, err := decodeOffsetKey(key)
		if err != nil {
			return nil, err
		}
		if k.Stream == stream {
			groups = append(groups, k.Group)
		}
	}
}
