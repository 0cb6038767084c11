package state

import (
	"bytes"
	"fmt"
)

// Kind is the type of a catalog entry. Its values are written into keys on
// disk: never renumber or reuse one; add new kinds with new values.
type Kind uint8

// Catalog kinds. Zero is deliberately not a kind, so that a zero Kind is
// caught as an error.
const (
	KindStream       Kind = 1
	KindQueue        Kind = 2
	KindExchange     Kind = 3
	KindBinding      Kind = 4
	KindSubscription Kind = 5
	// KindConnector is a connector created through the API (its
	// configuration); KindConnectorProgress what a connector remembers
	// of its progress (internal/connector).
	KindConnector         Kind = 6
	KindConnectorProgress Kind = 7
	// KindGroupConfig is a group's stored settings; KindTransaction a
	// transactional producer's state (the Kafka front end's groups and
	// transactions, kept by internal/broker).
	KindGroupConfig Kind = 8
	KindTransaction Kind = 9
)

// String returns the kind's name, e.g. "stream".
func (k Kind) String() string {
	switch k {
	case KindStream:
		return "stream"
	case KindQueue:
		return "queue"
	case KindExchange:
		return "exchange"
	case KindBinding:
		return "binding"
	case KindSubscription:
		return "subscription"
	case KindConnector:
		return "connector"
	case KindConnectorProgress:
		return "connector progress"
	case KindGroupConfig:
		return "group config"
	case KindTransaction:
		return "transaction"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

func checkKind(k Kind) error {
	if k < KindStream || k > KindTransaction {
		return fmt.Errorf("%w: %d", ErrInvalidKind, uint8(k))
	}
	return nil
}

// CatalogEntry is one catalog value and its name.
type CatalogEntry struct {
	Name  string
	Value []byte
}

// catalogPrefix is the key prefix of every entry of one kind.
func catalogPrefix(kind Kind, extra int) []byte {
	return append(catalogTable.key(1+extra), byte(kind))
}

func catalogKey(kind Kind, name string) []byte {
	return appendString(catalogPrefix(kind, encodedStringLen(name)), name)
}

func checkCatalogArgs(kind Kind, name string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	return checkName(kind.String(), name)
}

// GetCatalog returns the value stored for the named entry of the kind, or an
// error satisfying errors.Is(err, ErrNotFound).
func (s *Store) GetCatalog(kind Kind, name string) ([]byte, error) {
	if err := checkCatalogArgs(kind, name); err != nil {
		return nil, err
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	value, err := s.get(catalogKey(kind, name))
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	return value, nil
}

// ListCatalog returns every entry of the kind, in name order (bytewise).
func (s *Store) ListCatalog(kind Kind) ([]CatalogEntry, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	var entries []CatalogEntry
	err := s.scan(catalogPrefix(kind, 0), func(key, value []byte) error {
		name, err := decodeCatalogKey(key, kind)
		if err != nil {
			return err
		}
		entries = append(entries, CatalogEntry{Name: name, Value: bytes.Clone(value)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

func decodeCatalogKey(key []byte, kind Kind) (string, error) {
	r, err := newKeyReader(key, catalogTable)
	if err != nil {
		return "", err
	}
	k, err := r.byte()
	if err != nil {
		return "", err
	}
	if Kind(k) != kind {
		return "", r.corrupt("kind")
	}
	name, err := r.string()
	if err != nil {
		return "", err
	}
	return name, r.done()
}

// PutCatalog stores value as the named entry of the kind, replacing any
// previous value.
func (tx *Tx) PutCatalog(kind Kind, name string, value []byte) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkCatalogArgs(kind, name); err != nil {
		return err
	}
	return tx.set(catalogKey(kind, name), value)
}

// DeleteCatalog deletes the named entry of the kind; deleting an absent entry
// is not an error.
func (tx *Tx) DeleteCatalog(kind Kind, name string) error {
	if err := tx.check(); err != nil {
		return err
	}
	if err := checkCatalogArgs(kind, name); err != nil {
		return err
	}
	return tx.delete(catalogKey(kind, name))
}
