package server

// Options that apply to every listener or to some of them by name, and the
// plain and TLS listeners of a TCP front end.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// perListener is the value of an option such as tls-client-auth or
// max-listener-connections: one value for every listener, listener=value
// pairs for some, or both, comma-separated: "require", "https=none",
// "10000,http=500". A listener without a pair of its own takes the value
// without a name, or def when there is none.
type perListener struct {
	all    string
	byName map[string]string
}

// parsePerListener parses raw; names are the listeners it may name, and
// valid checks each value (its error is the reason).
func parsePerListener(raw, def string, names []string, valid func(string) error) (perListener, error) {
	p := perListener{all: def, byName: map[string]string{}}
	if strings.TrimSpace(raw) == "" {
		return p, nil // the option given empty: the default
	}
	seenAll := false
	for item := range strings.SplitSeq(raw, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return perListener{}, errors.New("empty item; write a value, name=value pairs, or both, separated by commas")
		}
		name, value, named := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !named {
			if seenAll {
				return perListener{}, fmt.Errorf("two values without a listener name (%q and %q)", p.all, item)
			}
			seenAll, p.all, value = true, item, item
		} else {
			if !slices.Contains(names, name) {
				return perListener{}, fmt.Errorf("unknown listener %q (listeners: %s)", name, strings.Join(names, ", "))
			}
			if _, dup := p.byName[name]; dup {
				return perListener{}, fmt.Errorf("listener %q given twice", name)
			}
			p.byName[name] = value
		}
		if err := valid(value); err != nil {
			return perListener{}, fmt.Errorf("%q: %w", item, err)
		}
	}
	return p, nil
}

// get returns the value of the named listener.
func (p perListener) get(name string) string {
	if v, ok := p.byName[name]; ok {
		return v
	}
	return p.all
}

// values returns every value p may give a listener.
func (p perListener) values() []string {
	out := []string{p.all}
	for _, v := range p.byName {
		out = append(out, v)
	}
	return out
}

// listenerNames are the names of every listener, as Endpoint and the
// options name them (the address option is the name followed by -addr).
func listenerNames() []string {
	var c Config
	var names []string
	for _, l := range c.listenerAddrs() {
		names = append(names, l.Name)
	}
	return names
}

// serveFrontEnd binds the plain listener (plainAddr, called name) and the
// TLS one (tlsAddr, called name-tls) of a TCP front end, either of which
// may be off (empty), and serves each with serve on a goroutine of its
// own. The front end must already be registered as a component, so that
// its Close ends Serve and closes the listeners; serve returning closed
// is that end.
func (s *Server) serveFrontEnd(ctx context.Context, name, plainAddr, tlsAddr string, serve func(net.Listener) error, closed error) error {
	for _, l := range []Endpoint{{Name: name, Addr: plainAddr}, {Name: name + "-tls", Addr: tlsAddr}} {
		if l.Addr == "" {
			continue
		}
		ln, err := s.listen(ctx, l.Name, l.Addr)
		if err != nil {
			return err
		}
		if l.Name != name {
			ln = s.tls.listener(l.Name, ln)
		}
		go func() {
			if err := serve(ln); err != nil && !errors.Is(err, closed) {
				s.logger.Error("listener stopped", "listener", l.Name, "err", err)
			}
		}()
	}
	return nil
}
