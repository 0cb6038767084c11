package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/state"
	"github.com/weirmq/weir/internal/storage"
)

// streamMeta is a stream's catalog entry, stored as JSON. Field names are part
// of the on-disk format.
type streamMeta struct {
	Version        int    `json:"v"`
	Name           string `json:"name"`
	ID             string `json:"id"` // 32 hex digits
	Partitions     int32  `json:"partitions"`
	RetentionAgeMs int64  `json:"retention_age_ms,omitempty"`
	RetentionBytes int64  `json:"retention_bytes,omitempty"`
	Compacted      bool   `json:"compacted,omitempty"`
	DedupWindowMs  int64  `json:"dedup_window_ms"`
	SegmentBytes   int64  `json:"segment_bytes,omitempty"`
	// UntilAcked drops records once every shared subscription settled them
	// (a queue).
	UntilAcked bool      `json:"until_acked,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// Temporary streams (inboxes) have no catalog entry: they end with
	// their owner, and a restart removes what is left of them.
	Temporary bool `json:"-"`
}

const metaVersion = 1

func decodeMeta(b []byte, m *streamMeta) error {
	if err := json.Unmarshal(b, m); err != nil {
		return err
	}
	if m.Version != metaVersion {
		return fmt.Errorf("unsupported catalog entry version %d", m.Version)
	}
	if _, err := hex.DecodeString(m.ID); err != nil || len(m.ID) != 32 || m.Partitions < 1 {
		return errors.New("malformed catalog entry")
	}
	return nil
}

func (m *streamMeta) dirName() string { return m.ID }

// id is the stream's ID as bytes (m.ID is 32 hex digits: decodeMeta and
// newStreamMeta see to it).
func (m *streamMeta) id() (id [16]byte) {
	hex.Decode(id[:], []byte(m.ID))
	return id
}

func (m *streamMeta) config() StreamConfig {
	return StreamConfig{
		Name:           m.Name,
		Partitions:     m.Partitions,
		RetentionAge:   time.Duration(m.RetentionAgeMs) * time.Millisecond,
		RetentionBytes: m.RetentionBytes,
		Compacted:      m.Compacted,
		DedupWindow:    time.Duration(m.DedupWindowMs) * time.Millisecond,
		SegmentBytes:   m.SegmentBytes,
	}
}

// stream is an open stream: its partitions' logs and its dedup index.
type stream struct {
	meta streamMeta
	dir  string

	mu    sync.RWMutex // guards parts, meta.Partitions (partitions can be added), subs and deleting
	parts []*storage.Log
	subs  map[string]*sharedSub // shared subscriptions by name
	// deleting is set by DeleteStream before it removes the catalog entries
	// of the stream's subscriptions: no subscription is added after.
	deleting bool

	roundRobin atomic.Uint32
	dedup      *dedupIndex // nil when deduplication is off
}

// ValidateStreamName checks a stream name against the rules every protocol
// shares (Kafka's topic rules): 1 to 249 characters from [a-zA-Z0-9._-], and
// not "." or "..".
func ValidateStreamName(name string) error { return validateName("stream", name) }

// ValidateGroupName applies the same rules to group names.
func ValidateGroupName(name string) error { return validateName("group", name) }

func validateName(kind, name string) error {
	if name == "" || len(name) > MaxNameLength {
		return fmt.Errorf("%w: %s name must be 1 to %d characters, got %d", ErrInvalidArgument, kind, MaxNameLength, len(name))
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %s name cannot be %q", ErrInvalidArgument, kind, name)
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s name %q has %q at position %d; use letters, digits, '.', '_' and '-'", ErrInvalidArgument, kind, name, c, i)
		}
	}
	return nil
}

func validateConfig(cfg *StreamConfig) error {
	if err := ValidateStreamName(cfg.Name); err != nil {
		return err
	}
	if IsInbox(cfg.Name) {
		return fmt.Errorf("%w: stream names starting with %q are reserved for inboxes", ErrInvalidArgument, InboxPrefix)
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if cfg.Partitions < 1 || cfg.Partitions > MaxPartitions {
		return fmt.Errorf("%w: partitions must be 1 to %d, got %d", ErrInvalidArgument, MaxPartitions, cfg.Partitions)
	}
	if cfg.RetentionAge < 0 || cfg.RetentionBytes < 0 {
		return fmt.Errorf("%w: retention must not be negative", ErrInvalidArgument)
	}
	if cfg.SegmentBytes != 0 && (cfg.SegmentBytes < 1<<20 || cfg.SegmentBytes > storage.MaxSegmentBytes) {
		return fmt.Errorf("%w: segment size must be 1 MiB to 2 GiB, got %d", ErrInvalidArgument, cfg.SegmentBytes)
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if cfg.DedupWindow < 0 {
		cfg.DedupWindow = -1 // off
	}
	return nil
}

func (b *Broker) logOptions(meta *streamMeta) storage.Options {
	return storage.Options{
		FS:              b.cfg.FS,
		FSync:           b.fsyncPolicy(meta),
		FSyncInterval:   b.cfg.FSyncInterval,
		Flusher:         b.cfg.Flusher,
		SegmentBytes:    meta.SegmentBytes,
		RetentionAge:    time.Duration(meta.RetentionAgeMs) * time.Millisecond,
		RetentionBytes:  meta.RetentionBytes,
		Compacted:       meta.Compacted,
		JanitorInterval: b.cfg.JanitorInterval,
		Now:             b.cfg.Now,
		Logger:          b.cfg.Logger,
		OnSync:          b.cfg.OnSync,
	}
}

// fsyncPolicy is the broker's, except for temporary streams, which do not
// outlive a restart and so need no fsync.
func (b *Broker) fsyncPolicy(meta *streamMeta) storage.FSyncPolicy {
	if meta.Temporary {
		return storage.FSyncNever
	}
	return b.cfg.FSync
}

func (b *Broker) openStream(meta streamMeta) (*stream, error) {
	s := &stream{meta: meta, dir: filepath.Join(b.streamsDir(), meta.dirName()), subs: make(map[string]*sharedSub)}
	if err := s.openPartitions(b, 0, meta.Partitions); err != nil {
		s.close()
		return nil, err
	}
	if meta.DedupWindowMs > 0 {
		s.dedup = newDedupIndex(time.Duration(meta.DedupWindowMs) * time.Millisecond)
		if err := s.dedup.rebuild(s, b.now()); err != nil {
			s.close()
			return nil, fmt.Errorf("rebuild dedup index: %w", err)
		}
	}
	return s, nil
}

// openPartitions opens partitions [from, to) and appends them to s.parts.
func (s *stream) openPartitions(b *Broker, from, to int32) error {
	for p := from; p < to; p++ {
		l, err := storage.Open(filepath.Join(s.dir, strconv.Itoa(int(p))), b.logOptions(&s.meta))
		if err != nil {
			return err
		}
		s.parts = append(s.parts, l)
	}
	return nil
}

func (s *stream) close() error {
	s.mu.RLock()
	for _, ss := range s.subs {
		ss.stop()
	}
	s.mu.RUnlock()
	var errs []error
	for _, l := range s.parts {
		if err := l.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *stream) partitions() []*storage.Log {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.parts
}

func (s *stream) partition(p int32) (*storage.Log, error) {
	parts := s.partitions()
	if p < 0 || int(p) >= len(parts) {
		return nil, fmt.Errorf("%w: stream %q has partitions 0 to %d, not %d", ErrPartitionNotFound, s.meta.Name, len(parts)-1, p)
	}
	return parts[p], nil
}

func (s *stream) info() StreamInfo {
	s.mu.RLock()
	meta, parts := s.meta, s.parts
	s.mu.RUnlock()
	info := StreamInfo{ID: meta.id(), Config: meta.config(), CreatedAt: meta.CreatedAt, Queue: meta.UntilAcked}
	for i, l := range parts {
		st := l.Stats()
		info.Partitions = append(info.Partitions, PartitionInfo{
			Partition: int32(i), StartOffset: st.StartOffset, EndOffset: st.EndOffset,
			DurableOffset: st.DurableOffset, Bytes: st.Bytes, Segments: st.Segments,
			AppendedOffsets: st.AppendedOffsets, AppendedBytes: st.AppendedBytes,
		})
	}
	return info
}

// CreateStream creates a stream and its partitions.
func (b *Broker) CreateStream(ctx context.Context, cfg StreamConfig) (StreamInfo, error) {
	if err := Authorize(ctx, auth.ResourceStream, cfg.Name, auth.ActionManage); err != nil {
		return StreamInfo{}, err
	}
	return b.createStream(ctx, cfg, false)
}

func (b *Broker) createStream(ctx context.Context, cfg StreamConfig, untilAcked bool) (StreamInfo, error) {
	if err := validateConfig(&cfg); err != nil {
		return StreamInfo{}, err
	}
	meta := b.newStreamMeta(cfg)
	meta.UntilAcked = untilAcked
	return b.addStream(meta)
}

// newStreamMeta is the catalog entry of a new stream with a fresh ID.
func (b *Broker) newStreamMeta(cfg StreamConfig) streamMeta {
	var id [16]byte
	rand.Read(id[:])
	return streamMeta{
		Version: metaVersion, Name: cfg.Name, ID: hex.EncodeToString(id[:]), Partitions: cfg.Partitions,
		RetentionAgeMs: cfg.RetentionAge.Milliseconds(), RetentionBytes: cfg.RetentionBytes, Compacted: cfg.Compacted,
		DedupWindowMs: cfg.DedupWindow.Milliseconds(), SegmentBytes: cfg.SegmentBytes, CreatedAt: b.now().UTC(),
	}
}

// addStream opens a new stream's partitions, records it in the catalog
// (unless it is temporary) and makes it visible. b.mu is held only to
// reserve the name and to publish the stream, not across the files' and
// the catalog's syncs.
func (b *Broker) addStream(meta streamMeta) (StreamInfo, error) {
	if err := b.reserve(meta.Name, true); err != nil {
		return StreamInfo{}, err
	}
	defer b.release(meta.Name)
	// The partition directories first, then the catalog entry: a crash in
	// between leaves a directory that the next Open removes.
	s, err := b.openStream(meta)
	if err != nil {
		return StreamInfo{}, err
	}
	if !meta.Temporary {
		value, _ := json.Marshal(meta)
		if err := b.state.Update(func(tx *state.Tx) error { return tx.PutCatalog(state.KindStream, meta.Name, value) }); err != nil {
			s.close()
			b.cfg.FS.RemoveAll(s.dir)
			return StreamInfo{}, err
		}
	}
	b.mu.Lock()
	b.registerStream(s)
	b.mu.Unlock()
	return s.info(), nil
}

// reserve marks name as being created (create) or deleted, and counts the
// change for Close; release ends it. A creation or deletion of a name that
// is being changed waits for that change to end, then decides as if the
// two had run one after the other (as they did when both held b.mu).
func (b *Broker) reserve(name string, create bool) error {
	b.mu.Lock()
	for {
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		done, busy := b.busy[name]
		if !busy {
			break
		}
		b.mu.Unlock()
		<-done
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	_, exists := b.streams[name]
	switch {
	case create && exists:
		return fmt.Errorf("%w: %q", ErrStreamExists, name)
	case !create && !exists:
		return fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	b.busy[name] = make(chan struct{})
	b.changing.Add(1)
	return nil
}

func (b *Broker) release(name string) {
	b.mu.Lock()
	close(b.busy[name])
	delete(b.busy, name)
	b.mu.Unlock()
	b.changing.Done()
}

// ListStreams describes every stream, by name.
func (b *Broker) ListStreams() []StreamInfo {
	b.mu.RLock()
	streams := make([]*stream, 0, len(b.streams))
	for _, s := range b.streams {
		if !s.meta.Temporary {
			streams = append(streams, s)
		}
	}
	b.mu.RUnlock()
	out := make([]StreamInfo, len(streams))
	for i, s := range streams {
		out[i] = s.info()
	}
	slices.SortFunc(out, func(a, b StreamInfo) int { return cmpString(a.Config.Name, b.Config.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DescribeStream describes one stream.
func (b *Broker) DescribeStream(name string) (StreamInfo, error) {
	s, err := b.stream(name)
	if err != nil {
		return StreamInfo{}, err
	}
	return s.info(), nil
}

// StreamID returns the ID of the stream named name: what a caller that
// follows a stream checks to notice it was deleted and created again,
// without the partitions' statistics DescribeStream gathers (the API's
// idle subscriptions check every 2 s: 10,000 of them spent 6% of the
// server's CPU in DescribeStream).
func (b *Broker) StreamID(name string) ([16]byte, error) {
	s, err := b.stream(name)
	if err != nil {
		return [16]byte{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.meta.id(), nil
}

// DeleteStream deletes a stream, its records and every group's committed
// offsets on it.
func (b *Broker) DeleteStream(ctx context.Context, name string) error {
	if err := Authorize(ctx, auth.ResourceStream, name, auth.ActionManage); err != nil {
		return err
	}
	if err := b.reserve(name, false); err != nil {
		return err
	}
	defer b.release(name)
	b.mu.RLock()
	s := b.streams[name]
	b.mu.RUnlock()
	// The catalog entry first: once it is gone the stream is gone, and a
	// crash before the files are removed leaves a directory Open removes.
	// From here no subscription is added (CreateSubscription checks
	// deleting).
	s.mu.Lock()
	s.deleting = true
	subs := make([]*sharedSub, 0, len(s.subs))
	for _, ss := range s.subs {
		subs = append(subs, ss)
	}
	s.mu.Unlock()
	err := b.state.Update(func(tx *state.Tx) error {
		if s.meta.Temporary {
			// Never in the catalog, nor its subscription (a temporary
			// queue's keeps its state in memory).
			return tx.DeleteStreamOffsets(name)
		}
		if err := tx.DeleteCatalog(state.KindStream, name); err != nil {
			return err
		}
		for _, ss := range subs {
			if err := tx.DeleteCatalog(state.KindSubscription, subCatalogName(name, ss.cfg.Name)); err != nil {
				return err
			}
			if err := tx.DeleteCursors(ss.id); err != nil {
				return err
			}
		}
		return tx.DeleteStreamOffsets(name)
	})
	if err != nil {
		s.mu.Lock()
		s.deleting = false
		s.mu.Unlock()
		return err
	}
	b.mu.Lock()
	b.removeStream(name)
	b.mu.Unlock()
	for _, ss := range subs {
		ss.stop()
	}
	// Bindings to the stream go with it (b.mu is not held: the exchange
	// lock and the stream map's lock are never held together).
	b.ex.mu.Lock()
	unbindErr := b.unbindDestination(Binding{Destination: name})
	b.ex.mu.Unlock()
	if unbindErr != nil {
		b.cfg.Logger.Warn("could not remove the bindings to a deleted stream", "stream", name, "err", unbindErr)
	}
	b.groups.streamRemoved(name)
	return errors.Join(s.close(), b.cfg.FS.RemoveAll(s.dir))
}

// AddPartitions grows a stream to total partitions. Keys may map to other
// partitions afterwards, as in Kafka.
func (b *Broker) AddPartitions(ctx context.Context, name string, total int32) (StreamInfo, error) {
	if err := Authorize(ctx, auth.ResourceStream, name, auth.ActionManage); err != nil {
		return StreamInfo{}, err
	}
	b.mu.Lock()
	s, ok := b.streams[name]
	if _, busy := b.busy[name]; !ok || busy { // being deleted
		b.mu.Unlock()
		return StreamInfo{}, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	info, err := b.growStream(s, total)
	b.mu.Unlock()
	if err != nil {
		return StreamInfo{}, err
	}
	b.groups.partitionsChanged(name, total)
	return info, nil
}

// growStream opens partitions up to total and records them in the catalog;
// b.mu is held so the stream cannot be deleted meanwhile.
func (b *Broker) growStream(s *stream, total int32) (StreamInfo, error) {
	name := s.meta.Name
	if s.meta.Temporary {
		return StreamInfo{}, fmt.Errorf("%w: temporary stream %q cannot grow (its catalog entry would outlive it)", ErrInvalidArgument, name)
	}
	s.mu.Lock()
	cur := s.meta.Partitions
	if total <= cur || total > MaxPartitions {
		s.mu.Unlock()
		return StreamInfo{}, fmt.Errorf("%w: stream %q has %d partitions; the new count must be larger and at most %d, got %d", ErrInvalidArgument, name, cur, MaxPartitions, total)
	}
	grown := &stream{meta: s.meta, dir: s.dir}
	if err := grown.openPartitions(b, cur, total); err != nil {
		grown.close()
		s.mu.Unlock()
		return StreamInfo{}, err
	}
	meta := s.meta
	meta.Partitions = total
	value, _ := json.Marshal(meta)
	if err := b.state.Update(func(tx *state.Tx) error { return tx.PutCatalog(state.KindStream, name, value) }); err != nil {
		grown.close()
		s.mu.Unlock()
		return StreamInfo{}, err
	}
	s.meta = meta
	s.parts = append(slices.Clip(s.parts), grown.parts...)
	for _, ss := range s.subs {
		ss.addPartitions(b, s.parts)
	}
	s.mu.Unlock()
	return s.info(), nil
}
