package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/weirmq/weir/internal/state"
)

// Connector entries: the broker keeps, in its state store, the
// configurations of connectors created through the API and what each
// connector remembers of its progress, as opaque values
// (internal/connector gives them meaning). It does not run connectors.

// ErrConnectorNotFound is returned for a connector entry that does not exist.
var ErrConnectorNotFound = errors.New("connector not found")

// ConnectorEntry is a stored connector configuration.
type ConnectorEntry struct {
	Name  string
	Value []byte
}

func checkConnectorName(name string) error {
	if name == "" || len(name) > MaxNameLength {
		return fmt.Errorf("%w: connector name must be 1 to %d characters", ErrInvalidArgument, MaxNameLength)
	}
	return nil
}

// PutConnector stores a connector's configuration, replacing any previous
// one; create says it must not exist yet (ErrConnectorExists otherwise).
func (b *Broker) PutConnector(ctx context.Context, name string, value []byte, create bool) error {
	if err := authorizeAdmin(ctx, "connector "+name); err != nil {
		return err
	}
	if err := checkConnectorName(name); err != nil {
		return err
	}
	connectorsMu.Lock()
	defer connectorsMu.Unlock()
	if create {
		if _, err := b.state.GetCatalog(state.KindConnector, name); err == nil {
			return fmt.Errorf("%w: %q", ErrConnectorExists, name)
		} else if !errors.Is(err, state.ErrNotFound) {
			return err
		}
	}
	return b.state.Update(func(tx *state.Tx) error { return tx.PutCatalog(state.KindConnector, name, value) })
}

// connectorsMu serializes the check and the write of PutConnector and
// DeleteConnector (a leaf lock; connectors are created seldom).
var connectorsMu sync.Mutex

// ErrConnectorExists is returned by PutConnector with create for a
// connector that exists.
var ErrConnectorExists = errors.New("connector already exists")

// ListConnectors returns the stored connector configurations by name.
func (b *Broker) ListConnectors() ([]ConnectorEntry, error) {
	entries, err := b.state.ListCatalog(state.KindConnector)
	if err != nil {
		return nil, err
	}
	out := make([]ConnectorEntry, len(entries))
	for i, e := range entries {
		out[i] = ConnectorEntry{Name: e.Name, Value: e.Value}
	}
	return out, nil
}

// DeleteConnector removes a connector's configuration and progress.
func (b *Broker) DeleteConnector(ctx context.Context, name string) error {
	if err := authorizeAdmin(ctx, "connector "+name); err != nil {
		return err
	}
	if err := checkConnectorName(name); err != nil {
		return err
	}
	connectorsMu.Lock()
	defer connectorsMu.Unlock()
	if _, err := b.state.GetCatalog(state.KindConnector, name); errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrConnectorNotFound, name)
	} else if err != nil {
		return err
	}
	return b.state.Update(func(tx *state.Tx) error {
		if err := tx.DeleteCatalog(state.KindConnector, name); err != nil {
			return err
		}
		return tx.DeleteCatalog(state.KindConnectorProgress, name)
	})
}

// LoadProgress returns what a connector saved of its progress
// (connector.Store).
func (b *Broker) LoadProgress(ctx context.Context, connector string) ([]byte, bool, error) {
	if err := checkConnectorName(connector); err != nil {
		return nil, false, err
	}
	v, err := b.state.GetCatalog(state.KindConnectorProgress, connector)
	if errors.Is(err, state.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// SaveProgress stores a connector's progress, synced before it returns
// (connector.Store).
func (b *Broker) SaveProgress(ctx context.Context, connector string, value []byte) error {
	if err := checkConnectorName(connector); err != nil {
		return err
	}
	return b.state.Update(func(tx *state.Tx) error {
		return tx.PutCatalog(state.KindConnectorProgress, connector, value)
	})
}

// DeleteProgress forgets a connector's progress (a connector of the
// configuration file that was removed).
func (b *Broker) DeleteProgress(ctx context.Context, connector string) error {
	if err := checkConnectorName(connector); err != nil {
		return err
	}
	return b.state.Update(func(tx *state.Tx) error {
		return tx.DeleteCatalog(state.KindConnectorProgress, connector)
	})
}
