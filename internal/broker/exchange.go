package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker/route"
	"github.com/weirmq/weir/internal/state"
)

// Errors of exchanges.
var (
	ErrExchangeNotFound = errors.New("exchange not found")
	ErrExchangeExists   = errors.New("exchange exists with other settings")
)

// ExchangeConfig declares an exchange: a router of records to streams (and
// queues, which are streams) and to other exchanges.
type ExchangeConfig struct {
	Name string
	Type route.Kind
	// AlternateExchange receives the records no binding matched.
	AlternateExchange string
}

// Binding routes an exchange's matching records to a stream, or to another
// exchange when ToExchange is set.
type Binding struct {
	Destination string
	ToExchange  bool
	Key         string            // direct and topic exchanges
	Args        map[string]string // headers exchanges ("x-match": all or any)
}

// ExchangeInfo describes an exchange.
type ExchangeInfo struct {
	Config     ExchangeConfig
	Bindings   []Binding
	Unroutable int64 // records no binding matched (nor an alternate), since start
}

// exchangeMeta is an exchange's catalog entry (JSON), bindings included:
// they change seldom and are read all at once.
type exchangeMeta struct {
	Version   int           `json:"v"`
	Name      string        `json:"name"`
	Type      route.Kind    `json:"type"`
	Alternate string        `json:"alternate,omitempty"`
	Bindings  []bindingMeta `json:"bindings,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
}

type bindingMeta struct {
	Destination string            `json:"dest"`
	ToExchange  bool              `json:"to_exchange,omitempty"`
	Key         string            `json:"key,omitempty"`
	Args        map[string]string `json:"args,omitempty"`
}

// exchange is an open exchange. Its routing table is replaced, never
// changed in place, so routing reads it without a lock.
type exchange struct {
	meta exchangeMeta
	// temp are the bindings to temporary streams: in memory only, never in
	// the catalog entry, so a restart leaves none behind (tempqueue.go).
	temp       []bindingMeta
	table      *route.Table
	unroutable int64
}

// routeDest is a destination in a routing table: streams and exchanges
// share the tables, told apart by a prefix.
func routeDest(b Binding) string {
	if b.ToExchange {
		return "x:" + b.Destination
	}
	return "s:" + b.Destination
}

func buildTable(meta *exchangeMeta, temp []bindingMeta) (*route.Table, error) {
	t, err := route.NewTable(meta.Type)
	if err != nil {
		return nil, err
	}
	for _, b := range slices.Concat(meta.Bindings, temp) {
		if _, err := t.Add(route.Binding{Destination: routeDest(Binding(b)), Key: b.Key, Args: b.Args}); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// exchanges holds the open exchanges; mu guards the map and every change
// (which also writes the catalog).
type exchanges struct {
	mu     sync.RWMutex
	byName map[string]*exchange
}

func (b *Broker) loadExchanges() error {
	b.ex.byName = make(map[string]*exchange)
	entries, err := b.state.ListCatalog(state.KindExchange)
	if err != nil {
		return err
	}
	for _, e := range entries {
		var meta exchangeMeta
		if err := json.Unmarshal(e.Value, &meta); err != nil || meta.Version != metaVersion {
			return fmt.Errorf("broker: catalog entry of exchange %q is malformed", e.Name)
		}
		t, err := buildTable(&meta, nil)
		if err != nil {
			return fmt.Errorf("broker: exchange %q: %w", e.Name, err)
		}
		b.ex.byName[meta.Name] = &exchange{meta: meta, table: t}
	}
	return nil
}

// saveExchange writes an exchange's entry; b.ex.mu is held.
func (b *Broker) saveExchange(meta *exchangeMeta) error {
	value, _ := json.Marshal(meta)
	return b.state.Update(func(tx *state.Tx) error { return tx.PutCatalog(state.KindExchange, meta.Name, value) })
}

// DeclareExchange creates an exchange, or checks that the one of that name
// has the same settings (as AMQP's exchange.declare).
func (b *Broker) DeclareExchange(ctx context.Context, cfg ExchangeConfig) (ExchangeInfo, error) {
	if err := Authorize(ctx, auth.ResourceExchange, cfg.Name, auth.ActionManage); err != nil {
		return ExchangeInfo{}, err
	}
	if err := validateName("exchange", cfg.Name); err != nil {
		return ExchangeInfo{}, err
	}
	if _, err := route.NewTable(cfg.Type); err != nil {
		return ExchangeInfo{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	b.ex.mu.Lock()
	defer b.ex.mu.Unlock()
	if x, ok := b.ex.byName[cfg.Name]; ok {
		if x.meta.Type != cfg.Type || x.meta.Alternate != cfg.AlternateExchange {
			return ExchangeInfo{}, fmt.Errorf("%w: %q is a %s exchange with alternate %q", ErrExchangeExists, cfg.Name, x.meta.Type, x.meta.Alternate)
		}
		return x.info(), nil
	}
	meta := exchangeMeta{Version: metaVersion, Name: cfg.Name, Type: cfg.Type, Alternate: cfg.AlternateExchange, CreatedAt: b.now().UTC()}
	t, _ := buildTable(&meta, nil)
	if err := b.saveExchange(&meta); err != nil {
		return ExchangeInfo{}, err
	}
	x := &exchange{meta: meta, table: t}
	b.ex.byName[cfg.Name] = x
	return x.info(), nil
}

func (x *exchange) info() ExchangeInfo {
	info := ExchangeInfo{Config: ExchangeConfig{Name: x.meta.Name, Type: x.meta.Type, AlternateExchange: x.meta.Alternate}, Unroutable: x.unroutable}
	for _, bm := range slices.Concat(x.meta.Bindings, x.temp) {
		info.Bindings = append(info.Bindings, Binding(bm))
	}
	return info
}

// ListExchanges describes every exchange, by name.
func (b *Broker) ListExchanges() []ExchangeInfo {
	b.ex.mu.RLock()
	defer b.ex.mu.RUnlock()
	out := make([]ExchangeInfo, 0, len(b.ex.byName))
	for _, x := range b.ex.byName {
		out = append(out, x.info())
	}
	slices.SortFunc(out, func(a, c ExchangeInfo) int { return strings.Compare(a.Config.Name, c.Config.Name) })
	return out
}

// DeleteExchange deletes an exchange and every binding to it.
func (b *Broker) DeleteExchange(ctx context.Context, name string) error {
	if err := Authorize(ctx, auth.ResourceExchange, name, auth.ActionManage); err != nil {
		return err
	}
	b.ex.mu.Lock()
	defer b.ex.mu.Unlock()
	if _, ok := b.ex.byName[name]; !ok {
		return fmt.Errorf("%w: %q", ErrExchangeNotFound, name)
	}
	if err := b.unbindDestination(Binding{Destination: name, ToExchange: true}); err != nil {
		return err
	}
	if err := b.state.Update(func(tx *state.Tx) error { return tx.DeleteCatalog(state.KindExchange, name) }); err != nil {
		return err
	}
	delete(b.ex.byName, name)
	return nil
}

// unbindDestination removes every binding to dest from every exchange;
// b.ex.mu is held.
func (b *Broker) unbindDestination(dest Binding) error {
	for _, x := range b.ex.byName {
		if err := b.unbindTemporary(x, func(bm bindingMeta) bool {
			return bm.Destination == dest.Destination && bm.ToExchange == dest.ToExchange
		}); err != nil {
			return err
		}
		x = b.ex.byName[x.meta.Name]
		meta := x.meta
		meta.Bindings = slices.DeleteFunc(slices.Clone(meta.Bindings), func(bm bindingMeta) bool {
			return bm.Destination == dest.Destination && bm.ToExchange == dest.ToExchange
		})
		if len(meta.Bindings) == len(x.meta.Bindings) {
			continue
		}
		if err := b.replaceExchange(x, meta); err != nil {
			return err
		}
	}
	return nil
}

// replaceExchange stores and installs new settings of an exchange; b.ex.mu
// is held.
func (b *Broker) replaceExchange(x *exchange, meta exchangeMeta) error {
	t, err := buildTable(&meta, x.temp)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := b.saveExchange(&meta); err != nil {
		return err
	}
	b.ex.byName[meta.Name] = &exchange{meta: meta, temp: x.temp, table: t, unroutable: x.unroutable}
	return nil
}

// Bind adds a binding from an exchange to a stream or another exchange;
// binding twice changes nothing.
func (b *Broker) Bind(ctx context.Context, exchangeName string, bind Binding) error {
	if err := Authorize(ctx, auth.ResourceExchange, exchangeName, auth.ActionManage); err != nil {
		return err
	}
	temporary := false
	if bind.ToExchange {
		b.ex.mu.RLock()
		_, ok := b.ex.byName[bind.Destination]
		b.ex.mu.RUnlock()
		if !ok {
			return fmt.Errorf("%w: %q", ErrExchangeNotFound, bind.Destination)
		}
	} else if IsInbox(bind.Destination) {
		return errInboxTarget("a binding", bind.Destination)
	} else if s, err := b.stream(bind.Destination); err != nil {
		return err
	} else {
		temporary = s.isTemporary()
	}
	b.ex.mu.Lock()
	defer b.ex.mu.Unlock()
	x, ok := b.ex.byName[exchangeName]
	if !ok {
		return fmt.Errorf("%w: %q", ErrExchangeNotFound, exchangeName)
	}
	bm := bindingMeta(bind)
	if temporary {
		return b.bindTemporary(x, bm)
	}
	if slices.ContainsFunc(x.meta.Bindings, func(o bindingMeta) bool { return sameBindingMeta(o, bm) }) {
		return nil
	}
	meta := x.meta
	meta.Bindings = append(slices.Clone(meta.Bindings), bm)
	return b.replaceExchange(x, meta)
}

// Unbind removes a binding; removing one that is not there is not an error
// (as AMQP's queue.unbind).
func (b *Broker) Unbind(ctx context.Context, exchangeName string, bind Binding) error {
	if err := Authorize(ctx, auth.ResourceExchange, exchangeName, auth.ActionManage); err != nil {
		return err
	}
	b.ex.mu.Lock()
	defer b.ex.mu.Unlock()
	x, ok := b.ex.byName[exchangeName]
	if !ok {
		return fmt.Errorf("%w: %q", ErrExchangeNotFound, exchangeName)
	}
	bm := bindingMeta(bind)
	if err := b.unbindTemporary(x, func(o bindingMeta) bool { return sameBindingMeta(o, bm) }); err != nil {
		return err
	}
	x = b.ex.byName[exchangeName]
	meta := x.meta
	meta.Bindings = slices.DeleteFunc(slices.Clone(meta.Bindings), func(o bindingMeta) bool { return sameBindingMeta(o, bm) })
	if len(meta.Bindings) == len(x.meta.Bindings) {
		return nil
	}
	return b.replaceExchange(x, meta)
}

func sameBindingMeta(a, c bindingMeta) bool {
	if a.Destination != c.Destination || a.ToExchange != c.ToExchange || a.Key != c.Key || len(a.Args) != len(c.Args) {
		return false
	}
	for k, v := range a.Args {
		if w, ok := c.Args[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Route returns the streams a record with this routing key and these
// headers reaches through an exchange: following exchange-to-exchange
// bindings (each exchange visited once, so cycles end) and, where nothing
// matched, the alternate exchange.
func (b *Broker) Route(exchangeName, routingKey string, headers []Header) ([]string, error) {
	b.ex.mu.RLock()
	defer b.ex.mu.RUnlock()
	x, ok := b.ex.byName[exchangeName]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrExchangeNotFound, exchangeName)
	}
	hs := make([]route.Header, len(headers))
	for i, h := range headers {
		hs[i] = route.Header{Key: h.Key, Value: h.Value}
	}
	visited := map[string]bool{}
	var streams []string
	var walk func(x *exchange)
	walk = func(x *exchange) {
		if visited[x.meta.Name] {
			return
		}
		visited[x.meta.Name] = true
		dests := x.table.Match(routingKey, hs)
		if len(dests) == 0 && x.meta.Alternate != "" {
			if alt, ok := b.ex.byName[x.meta.Alternate]; ok {
				walk(alt)
			}
			return
		}
		for _, d := range dests {
			name := d[2:]
			if strings.HasPrefix(d, "x:") {
				if next, ok := b.ex.byName[name]; ok {
					walk(next)
				}
			} else if !slices.Contains(streams, name) {
				streams = append(streams, name)
			}
		}
	}
	walk(x)
	return streams, nil
}

// PublishExchange routes records, all with one routing key, through an
// exchange and appends each to every stream it reaches; it returns once
// every target holds them under the fsync policy. It returns the streams
// reached; none means the records were unroutable (counted, and for a
// mandatory publish the caller returns them to the publisher).
func (b *Broker) PublishExchange(ctx context.Context, exchangeName, routingKey string, recs []Record) ([]string, error) {
	if err := Authorize(ctx, auth.ResourceExchange, exchangeName, auth.ActionPublish); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: nothing to publish", ErrInvalidArgument)
	}
	// Records of a headers exchange may each go elsewhere; the others
	// route on the key alone.
	byStream := map[string][]Record{}
	var reached []string
	for i := range recs {
		streams, err := b.Route(exchangeName, routingKey, recs[i].Headers)
		if err != nil {
			return nil, err
		}
		for _, s := range streams {
			if _, ok := byStream[s]; !ok {
				reached = append(reached, s)
			}
			byStream[s] = append(byStream[s], recs[i])
		}
		if len(streams) == 0 {
			b.ex.mu.Lock()
			if x, ok := b.ex.byName[exchangeName]; ok {
				x.unroutable++
			}
			b.ex.mu.Unlock()
		}
	}
	errs := make(chan error, len(byStream))
	var wg sync.WaitGroup
	for s, rs := range byStream {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Publish(serverWork(ctx), s, rs)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// A binding to a stream deleted meanwhile routes nowhere.
		if err != nil && !errors.Is(err, ErrStreamNotFound) {
			return reached, err
		}
	}
	return reached, nil
}
