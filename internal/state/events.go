package state

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The events table is the event store's index (internal/broker/events*.go).
// The events themselves are records of the event log; these keys say where
// they are:
//
//	0x40 0x01  'P'                                  -> checkpoint int64: every position below is indexed
//	0x40 0x01  'V' string(aggregate)                -> version int64: the aggregate's last event
//	0x40 0x01  'E' string(aggregate) version(8)     -> position int64 of that event in the log
//	0x40 0x01  'I' string(event id)                 -> version int64, position int64, aggregate
//
// and the category index ('Q', 'C': events_category.go).
//
// Versions and positions are written big-endian; both are non-negative, so
// byte order is numeric order and an aggregate's 'E' keys are in version
// order.

var eventsTable = table{name: "events", prefix: 0x40, version: 1}

const (
	eventCheckpoint = 'P'
	eventVersion    = 'V'
	eventPosition   = 'E'
	eventID         = 'I'
)

// EventRef says where one stored event is: its aggregate, its version in
// the aggregate and its position in the event log.
type EventRef struct {
	Aggregate string
	Version   int64
	Position  int64
}

// VersionPosition is one event of an aggregate: its version and position.
type VersionPosition struct {
	Version  int64
	Position int64
}

func eventKey(kind byte, name string, extra int) []byte {
	k := append(eventsTable.key(1+encodedStringLen(name)+extra), kind)
	return appendString(k, name)
}

func eventPositionKey(aggregate string, version int64) []byte {
	return binary.BigEndian.AppendUint64(eventKey(eventPosition, aggregate, 8), uint64(version))
}

func decodeInt64(what string, value []byte) (int64, error) {
	if len(value) != 8 {
		return 0, fmt.Errorf("%w: %s value of %d bytes", ErrCorrupt, what, len(value))
	}
	return int64(binary.BigEndian.Uint64(value)), nil
}

// EventCheckpoint returns the position below which every event of the log
// is indexed (0 when nothing was indexed).
func (s *Store) EventCheckpoint() (int64, error) {
	return s.readEventCheckpoint(eventCheckpoint, "event checkpoint")
}

// readEventCheckpoint reads one of the event indexes' checkpoints (0 when none
// is stored).
func (s *Store) readEventCheckpoint(which byte, what string) (int64, error) {
	if err := s.life.enter(); err != nil {
		return 0, err
	}
	defer s.life.leave()
	value, err := s.get(append(eventsTable.key(1), which))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeInt64(what, value)
}

// AggregateVersion returns the version of an aggregate's last indexed event
// (0: the aggregate has none).
func (s *Store) AggregateVersion(aggregate string) (int64, error) {
	if err := checkName("aggregate", aggregate); err != nil {
		return 0, err
	}
	if err := s.life.enter(); err != nil {
		return 0, err
	}
	defer s.life.leave()
	value, err := s.get(eventKey(eventVersion, aggregate, 0))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeInt64("aggregate version", value)
}

// EventByID returns where the event with the given id is stored, and false
// when no indexed event has that id.
func (s *Store) EventByID(id string) (EventRef, bool, error) {
	if err := checkName("event id", id); err != nil {
		return EventRef{}, false, err
	}
	if err := s.life.enter(); err != nil {
		return EventRef{}, false, err
	}
	defer s.life.leave()
	value, err := s.get(eventKey(eventID, id, 0))
	if errors.Is(err, ErrNotFound) {
		return EventRef{}, false, nil
	}
	if err != nil {
		return EventRef{}, false, err
	}
	if len(value) < 17 {
		return EventRef{}, false, fmt.Errorf("%w: event id value of %d bytes", ErrCorrupt, len(value))
	}
	return EventRef{
		Version:   int64(binary.BigEndian.Uint64(value)),
		Position:  int64(binary.BigEndian.Uint64(value[8:])),
		Aggregate: string(value[16:]),
	}, true, nil
}

// AggregatePositions returns the versions and positions of an aggregate's
// indexed events from version from on, in version order, at most limit of
// them (limit <= 0: all).
func (s *Store) AggregatePositions(aggregate string, from int64, limit int) ([]VersionPosition, error) {
	if err := checkName("aggregate", aggregate); err != nil {
		return nil, err
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	prefix := eventKey(eventPosition, aggregate, 0)
	lower := binary.BigEndian.AppendUint64(eventKey(eventPosition, aggregate, 8), uint64(max(from, 0)))
	var out []VersionPosition
	errEnough := errors.New("enough")
	err := s.scanRange(lower, prefixEnd(prefix), func(key, value []byte) error {
		rest := key[len(prefix):]
		if len(rest) != 8 {
			return fmt.Errorf("%w: event position key %x", ErrCorrupt, key)
		}
		pos, err := decodeInt64("event position", value)
		if err != nil {
			return err
		}
		out = append(out, VersionPosition{Version: int64(binary.BigEndian.Uint64(rest)), Position: pos})
		if limit > 0 && len(out) >= limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return out, nil
}

// PutEvent indexes one event under its id. Events of one aggregate must be
// put in version order (the aggregate's version becomes ref.Version).
func (tx *Tx) PutEvent(id string, ref EventRef) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("aggregate", ref.Aggregate); err != nil {
		return err
	}
	if err := checkName("event id", id); err != nil {
		return err
	}
	if ref.Version < 1 || ref.Position < 0 {
		return fmt.Errorf("%w: event version %d, position %d", ErrInvalidName, ref.Version, ref.Position)
	}
	version := binary.BigEndian.AppendUint64(nil, uint64(ref.Version))
	position := binary.BigEndian.AppendUint64(nil, uint64(ref.Position))
	if err := tx.set(eventKey(eventVersion, ref.Aggregate, 0), version); err != nil {
		return err
	}
	if err := tx.set(eventPositionKey(ref.Aggregate, ref.Version), position); err != nil {
		return err
	}
	value := make([]byte, 0, 16+len(ref.Aggregate))
	value = append(append(append(value, version...), position...), ref.Aggregate...)
	return tx.set(eventKey(eventID, id, 0), value)
}

// SetEventCheckpoint records that every event below position is indexed.
func (tx *Tx) SetEventCheckpoint(position int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.set(append(eventsTable.key(1), eventCheckpoint), binary.BigEndian.AppendUint64(nil, uint64(position)))
}
