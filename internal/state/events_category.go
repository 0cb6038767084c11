package state

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The category index of the event store: the positions of each category's
// events, so that a category is read by a scan of its keys instead of a
// filter over the whole log. Its entries are written in the transactions
// that write the version index (broker/events_index.go), with a checkpoint
// of their own, because a store indexed before the category index existed
// has every position in the version index and none here:
//
//	0x40 0x01  'Q'                                  -> checkpoint int64: every position below is in the category index
//	0x40 0x01  'C' string(category) position(8)     -> version int64 of the event at that position
//
// Positions are big-endian, so a category's keys are in position order.

const (
	eventCategoryCheckpoint = 'Q'
	eventCategory           = 'C'
)

func eventCategoryKey(category string, position int64) []byte {
	return binary.BigEndian.AppendUint64(eventKey(eventCategory, category, 8), uint64(position))
}

// CategoryCheckpoint returns the position below which every event of the
// log is in the category index (0 when nothing was indexed).
func (s *Store) CategoryCheckpoint() (int64, error) {
	return s.readEventCheckpoint(eventCategoryCheckpoint, "event category checkpoint")
}

// CategoryPositions returns the positions (and versions in their
// aggregates) of a category's indexed events in [from, below), in position
// order, at most limit of them (limit <= 0:
// all).
func (s *Store) CategoryPositions(category string, from, below int64, limit int) ([]VersionPosition, error) {
	if err := checkName("category", category); err != nil {
		return nil, err
	}
	if from < 0 || below <= from {
		return nil, nil
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	prefix := eventKey(eventCategory, category, 0)
	var out []VersionPosition
	errEnough := errors.New("enough")
	err := s.scanRange(eventCategoryKey(category, from), eventCategoryKey(category, below), func(key, value []byte) error {
		rest := key[len(prefix):]
		if len(rest) != 8 {
			return fmt.Errorf("%w: event category key %x", ErrCorrupt, key)
		}
		version, err := decodeInt64("event category version", value)
		if err != nil {
			return err
		}
		out = append(out, VersionPosition{Version: version, Position: int64(binary.BigEndian.Uint64(rest))})
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

// PutCategoryEvent indexes the event at position (version of its
// aggregate) under its category. Putting it again is harmless.
func (tx *Tx) PutCategoryEvent(category string, position, version int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkName("category", category); err != nil {
		return err
	}
	if version < 1 || position < 0 {
		return fmt.Errorf("%w: event version %d, position %d", ErrInvalidName, version, position)
	}
	return tx.set(eventCategoryKey(category, position), binary.BigEndian.AppendUint64(nil, uint64(version)))
}

// SetCategoryCheckpoint records that every event below position is in the
// category index.
func (tx *Tx) SetCategoryCheckpoint(position int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.set(append(eventsTable.key(1), eventCategoryCheckpoint), binary.BigEndian.AppendUint64(nil, uint64(position)))
}

// DropCategoryIndex deletes the category index, entries and checkpoint, as
// in a store written before it existed: the event store indexes the whole
// log by category again when it next opens. A repair for an index thought
// damaged; the version index is left as it is.
func (tx *Tx) DropCategoryIndex() error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := tx.deletePrefix(append(eventsTable.key(1), eventCategory)); err != nil {
		return err
	}
	return tx.delete(append(eventsTable.key(1), eventCategoryCheckpoint))
}
