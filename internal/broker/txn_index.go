package broker

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/record"
)

// txnIndex is, per partition, the open transactions (producer id → a lower
// bound of the transaction's first offset there) and the aborted ones.
// The last stable offset of a partition is the first offset of its oldest
// open transaction, or its end offset when none is open; read-committed
// fetches stop there and are told of the aborted transactions they cover.
// used stays false until the first transaction, so a node without
// transactions pays one atomic load per fetched partition.
type txnIndex struct {
	used  atomic.Bool
	mu    sync.RWMutex // a leaf
	parts map[partitionKey]*txnPartIndex
}

type txnPartIndex struct {
	open    map[int64]int64 // producer id → first offset (lower bound)
	aborted []abortedTxn    // by marker offset
}

// abortedTxn is an aborted transaction on one partition: its producer, a
// lower bound of its first offset and the offset of its ABORT marker.
type abortedTxn struct {
	ProducerID int64 `json:"producer_id"`
	First      int64 `json:"first"`
	Last       int64 `json:"last"`
}

// AbortedTxn is an aborted transaction a read-committed reader must skip:
// the producer's transactional records from First until its ABORT marker.
type AbortedTxn struct {
	ProducerID int64
	First      int64
}

func abortedCatalogName(k partitionKey) string {
	return "aborted/" + k.streamID + "/" + strconv.Itoa(int(k.partition))
}

func (x *txnIndex) part(k partitionKey) *txnPartIndex {
	if x.parts == nil {
		x.parts = make(map[partitionKey]*txnPartIndex)
	}
	p := x.parts[k]
	if p == nil {
		p = &txnPartIndex{open: make(map[int64]int64)}
		x.parts[k] = p
	}
	return p
}

func (x *txnIndex) open(k partitionKey, producerID, first int64) {
	x.used.Store(true)
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.part(k)
	if f, ok := p.open[producerID]; !ok || first < f {
		p.open[producerID] = first
	}
}

func (x *txnIndex) close(k partitionKey, producerID int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.parts[k]; p != nil {
		delete(p.open, producerID)
	}
}

// withAborted returns the partition's aborted list with t added, without
// the transactions whose marker retention removed (below start): the list
// to store, then to set.
func (x *txnIndex) withAborted(k partitionKey, t abortedTxn, start int64) []abortedTxn {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var list []abortedTxn
	if p := x.parts[k]; p != nil {
		for _, a := range p.aborted {
			if a.Last >= start {
				list = append(list, a)
			}
		}
	}
	return append(list, t)
}

// setAborted replaces a partition's aborted list.
func (x *txnIndex) setAborted(k partitionKey, list []abortedTxn) {
	x.used.Store(true)
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.part(k)
	p.aborted = slices.SortedFunc(slices.Values(list), func(a, b abortedTxn) int { return cmp.Compare(a.Last, b.Last) })
}

// loadAborted reads one partition's stored aborted list.
func (x *txnIndex) loadAborted(name string, value []byte) error {
	fields := strings.Split(name, "/")
	var list []abortedTxn
	if len(fields) != 3 || json.Unmarshal(value, &list) != nil {
		return fmt.Errorf("broker: aborted transactions entry %q is malformed", name)
	}
	if _, err := hex.DecodeString(fields[1]); err != nil {
		return fmt.Errorf("broker: aborted transactions entry %q is malformed", name)
	}
	p, err := strconv.Atoi(fields[2])
	if err != nil {
		return fmt.Errorf("broker: aborted transactions entry %q is malformed", name)
	}
	x.setAborted(partitionKey{fields[1], int32(p)}, list)
	return nil
}

// lastStable is the partition's last stable offset given its end.
func (x *txnIndex) lastStable(k partitionKey, end int64) int64 {
	if !x.used.Load() {
		return end
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	p := x.parts[k]
	if p == nil {
		return end
	}
	lso := end
	for _, first := range p.open {
		lso = min(lso, first)
	}
	return lso
}

// abortedIn lists the aborted transactions that may have records in
// [from, to]: those whose marker is at or after from and that began at or
// before to.
func (x *txnIndex) abortedIn(k partitionKey, from, to int64) []AbortedTxn {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p := x.parts[k]
	if p == nil {
		return nil
	}
	i, _ := slices.BinarySearchFunc(p.aborted, from, func(a abortedTxn, off int64) int {
		switch {
		case a.Last < off:
			return -1
		case a.Last > off:
			return 1
		}
		return 0
	})
	var out []AbortedTxn
	for _, a := range p.aborted[i:] {
		if a.First <= to {
			out = append(out, AbortedTxn{ProducerID: a.ProducerID, First: a.First})
		}
	}
	return out
}

// ReadCommitted is ReadBatches for a read-committed reader: only batches
// below the last stable offset, with the aborted transactions among them.
// LastStable is also set by ReadBatches (for every reader).
func (b *Broker) ReadCommitted(streamName string, partition int32, offset int64, maxBytes int, dst []byte) (PartitionRead, error) {
	res, err := b.ReadBatches(streamName, partition, offset, maxBytes, dst)
	if err != nil || !b.txns.index.used.Load() {
		return res, err
	}
	base := len(dst) // res.Data is dst and what was read after it
	cut, last := base, offset
	for p := base; p+record.HeaderSize <= len(res.Data); {
		h, err := record.ParseHeader(res.Data[p:])
		if err != nil || h.LastOffset() >= res.LastStable {
			break
		}
		p += h.Size()
		cut, last = p, h.LastOffset()
	}
	res.Data = res.Data[:cut]
	if cut > base {
		key, err := b.partitionKeyOf(streamName, partition)
		if err == nil {
			res.Aborted = b.txns.index.abortedIn(key, offset, last)
		}
	}
	return res, nil
}

// partitionKeyOf is the producer/transaction key of a stream's partition.
func (b *Broker) partitionKeyOf(streamName string, partition int32) (partitionKey, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return partitionKey{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return partitionKey{s.meta.ID, partition}, nil
}

// LastStableOffset is a partition's last stable offset: its end, unless a
// transaction is open on it.
func (b *Broker) LastStableOffset(streamName string, partition int32) (int64, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return 0, err
	}
	l, err := s.partition(partition)
	if err != nil {
		return 0, err
	}
	s.mu.RLock()
	key := partitionKey{s.meta.ID, partition}
	s.mu.RUnlock()
	return b.txns.index.lastStable(key, l.EndOffset()), nil
}

// reserve makes sure ids handed out from now on are above id (producer ids
// of transactional ids stored before a restart).
func (p *producerRegistry) reserve(id int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == 0 {
		p.next = now.UnixMilli() << 16
	}
	if p.next <= id {
		p.next = id + 1
	}
}
