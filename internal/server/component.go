package server

import (
	"context"
	"errors"
	"fmt"
)

// A Component is a part of a running node that must be closed when the node
// shuts down: the storage engine, the state store, the broker, a protocol
// front end. Whoever creates a component opens it, then registers it with
// the server, which closes components in the reverse order of registration:
// a component is closed before the ones it was built on.
type Component interface {
	// Name identifies the component in logs and errors, e.g. "storage".
	Name() string
	// Close stops the component and releases what it holds. It should
	// finish in-flight work while ctx allows and return promptly once ctx
	// is done.
	Close(ctx context.Context) error
}

// ComponentFunc makes a Component of a name and a close function, for parts
// that need no type of their own.
func ComponentFunc(name string, close func(ctx context.Context) error) Component {
	return funcComponent{name: name, close: close}
}

type funcComponent struct {
	name  string
	close func(ctx context.Context) error
}

func (c funcComponent) Name() string                    { return c.name }
func (c funcComponent) Close(ctx context.Context) error { return c.close(ctx) }

// Register adds c, which the caller has opened, to the components Shutdown
// closes. Components registered before Start are closed after everything
// Start opens. Register panics once the server is shutting down, since c
// would never be closed.
func (s *Server) Register(c Component) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == phaseStopped {
		panic(fmt.Sprintf("server: Register(%q) after Shutdown", c.Name()))
	}
	s.components = append(s.components, c)
}

// closeComponents closes every registered component, last registered first,
// even when some fail, and forgets them.
func (s *Server) closeComponents(ctx context.Context) error {
	s.mu.Lock()
	components := s.components
	s.components = nil
	s.mu.Unlock()

	var errs []error
	for i := len(components) - 1; i >= 0; i-- {
		c := components[i]
		if err := c.Close(ctx); err != nil {
			s.logger.Error("closing component failed", "component", c.Name(), "err", err)
			errs = append(errs, fmt.Errorf("close %s: %w", c.Name(), err))
			continue
		}
		s.logger.Debug("closed component", "component", c.Name())
	}
	return errors.Join(errs...)
}
