package storage

import (
	"encoding/binary"
	"math"
	"sort"
	"sync"
)

// On-disk index formats, one pair of files beside each segment:
//
//	<base>.index      entries of 8 bytes: relativeOffset uint32, position uint32
//	<base>.timeindex  entries of 12 bytes: timestamp int64, relativeOffset uint32
//
// An offset-index entry says the batch whose base offset is base+relativeOffset
// starts at byte position of the segment; entries are added about every
// IndexIntervalBytes. A time-index entry (T, o) says T is the largest timestamp
// of any batch up to and including the one starting at offset base+o; entries
// are added at offset-index points when the largest timestamp grew, for the
// first batch, and a last one when the segment is rolled, so the last entry of
// a closed segment holds the segment's newest timestamp.
const (
	offsetEntrySize = 8
	timeEntrySize   = 12
	// maxRelativeOffset bounds the offsets one segment may hold so that
	// relative offsets fit in uint32.
	maxRelativeOffset = math.MaxUint32 - 1
)

type offsetEntry struct {
	offset int64 // absolute base offset of the batch
	pos    int64 // byte position of the batch in the segment
}

type timeEntry struct {
	ts     int64
	offset int64
}

// segmentIndex is the in-memory form of both indexes of one segment. The
// active segment's writer appends to it while readers look it up.
type segmentIndex struct {
	mu      sync.RWMutex
	offsets []offsetEntry
	times   []timeEntry
	// maxTs is the largest timestamp in the segment (-1 when empty); for a
	// closed segment it equals the last time entry.
	maxTs int64
	// lastIndexedPos is the position of the last offset entry (0 if none).
	lastIndexedPos int64
}

func newSegmentIndex() *segmentIndex { return &segmentIndex{maxTs: -1} }

// lookup returns the position of the last indexed batch whose base offset is
// at most offset (0 when there is none).
func (x *segmentIndex) lookup(offset int64) int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(len(x.offsets), func(i int) bool { return x.offsets[i].offset > offset })
	if i == 0 {
		return 0
	}
	return x.offsets[i-1].pos
}

// timeLookup returns an offset from which scanning finds the first record with
// a timestamp at or after ts: the offset of the last time entry whose
// timestamp is below ts, or -1 to scan from the segment start.
func (x *segmentIndex) timeLookup(ts int64) int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(len(x.times), func(i int) bool { return x.times[i].ts >= ts })
	if i == 0 {
		return -1
	}
	return x.times[i-1].offset
}

func (x *segmentIndex) maxTimestamp() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.maxTs
}

// observe records that a batch with the given base offset and largest
// timestamp was written at pos. It returns whether offset and time entries
// were added, so the caller can persist them.
func (x *segmentIndex) observe(offset, pos, maxTs, interval int64) (addedOffset, addedTime bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	first := len(x.times) == 0 && x.maxTs < 0
	if pos > 0 && pos-x.lastIndexedPos >= interval {
		x.offsets = append(x.offsets, offsetEntry{offset: offset, pos: pos})
		x.lastIndexedPos = pos
		addedOffset = true
	}
	if maxTs > x.maxTs {
		x.maxTs = maxTs
		if first || addedOffset {
			x.times = append(x.times, timeEntry{ts: maxTs, offset: offset})
			addedTime = true
		}
	}
	return addedOffset, addedTime
}

// seal appends a final time entry holding the segment's largest timestamp if
// the last entry does not already; lastOffset is the base offset of the
// segment's last batch.
func (x *segmentIndex) seal(lastBatchOffset int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.maxTs < 0 {
		return false
	}
	if n := len(x.times); n > 0 && x.times[n-1].ts >= x.maxTs {
		return false
	}
	x.times = append(x.times, timeEntry{ts: x.maxTs, offset: lastBatchOffset})
	return true
}

// truncateTo drops the entries at or past pos (used when a failed write is
// undone or a torn tail removed).
func (x *segmentIndex) truncateTo(pos int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := sort.Search(len(x.offsets), func(i int) bool { return x.offsets[i].pos >= pos })
	x.offsets = x.offsets[:i]
	x.lastIndexedPos = 0
	if i > 0 {
		x.lastIndexedPos = x.offsets[i-1].pos
	}
}

func appendOffsetEntry(dst []byte, base int64, e offsetEntry) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(e.offset-base))
	return binary.BigEndian.AppendUint32(dst, uint32(e.pos))
}

func appendTimeEntry(dst []byte, base int64, e timeEntry) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
	return binary.BigEndian.AppendUint32(dst, uint32(e.offset-base))
}

// encode returns the whole offset and time index files.
func (x *segmentIndex) encode(base int64) (offsets, times []byte) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	offsets = make([]byte, 0, len(x.offsets)*offsetEntrySize)
	for _, e := range x.offsets {
		offsets = appendOffsetEntry(offsets, base, e)
	}
	times = make([]byte, 0, len(x.times)*timeEntrySize)
	for _, e := range x.times {
		times = appendTimeEntry(times, base, e)
	}
	return offsets, times
}

// decodeIndexes parses index files of a segment of logSize bytes. It keeps
// the longest prefix of entries that is well formed (strictly increasing
// offsets and positions within the log, non-decreasing timestamps) and
// reports whether the files were entirely well formed, so a damaged index can
// be rebuilt.
func decodeIndexes(base, logSize int64, offsets, times []byte) (*segmentIndex, bool) {
	x := newSegmentIndex()
	ok := len(offsets)%offsetEntrySize == 0 && len(times)%timeEntrySize == 0
	prevOff, prevPos := base, int64(0)
	for i := 0; i+offsetEntrySize <= len(offsets); i += offsetEntrySize {
		off := base + int64(binary.BigEndian.Uint32(offsets[i:]))
		pos := int64(binary.BigEndian.Uint32(offsets[i+4:]))
		if off <= prevOff || pos <= prevPos || pos >= logSize {
			ok = false
			break
		}
		x.offsets = append(x.offsets, offsetEntry{offset: off, pos: pos})
		prevOff, prevPos = off, pos
	}
	x.lastIndexedPos = prevPos
	prevTs, prevTOff := int64(math.MinInt64), base-1
	for i := 0; i+timeEntrySize <= len(times); i += timeEntrySize {
		ts := int64(binary.BigEndian.Uint64(times[i:]))
		off := base + int64(binary.BigEndian.Uint32(times[i+8:]))
		if ts < prevTs || off < prevTOff || ts < 0 {
			ok = false
			break
		}
		x.times = append(x.times, timeEntry{ts: ts, offset: off})
		prevTs, prevTOff = ts, off
	}
	if n := len(x.times); n > 0 {
		x.maxTs = x.times[n-1].ts
	}
	return x, ok
}
