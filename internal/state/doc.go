// Package state is Weir's durable mutable state: a small API over an embedded,
// crash-safe Pebble database. It holds the catalog (streams, queues,
// exchanges, bindings, subscriptions, stored as values the broker encodes)
// and the committed offsets of consumer groups. Later tables (queue cursors,
// dedup windows, the event-store index) are added the same way.
//
// # Durability
//
// Every Update is one Pebble batch, committed atomically and, unless
// Options.NoSync is set, synced to the write-ahead log before Update returns:
// an acknowledged commit survives a crash. Pebble's commit pipeline
// group-commits concurrent synced batches, so N goroutines committing at once
// share far fewer than N fsyncs (see BenchmarkCommitOffsetParallel).
//
// # Key layout
//
// Every key starts with a table prefix byte and a layout version byte, so the
// key spaces of tables never overlap and a table's layout can change by
// writing keys under a new version byte (old and new layouts can coexist
// while a migration runs). Registered tables, with the components that follow
// the two header bytes:
//
//	0x01 0x01  meta     string(name)                               -> meta value
//	0x10 0x01  catalog  kind(1 byte) string(name)                  -> opaque value
//	0x20 0x01  offsets  string(group) string(stream) partition(4)  -> offset value
//
// string(s) is order-preserving and prefix-free: every 0x00 byte of s is
// written as 0x00 0xFF and the string ends with 0x00 0x01. Hence the bytewise
// order of keys is the natural order of their components, a name that is a
// prefix of another ("a", "ab") can never produce a colliding or interleaved
// key, and names may contain any byte, NUL included. Only the empty name is
// rejected (ErrInvalidName): it is never a valid broker name and usually a
// sign of a zero value passed by mistake. partition(4) is the int32 with its
// sign bit flipped, big-endian, so that it sorts numerically.
//
// The offset value is a version byte (1), the offset (int64 big-endian), the
// leader epoch (int32 big-endian), the commit time (Unix nanoseconds, int64
// big-endian; math.MinInt64 stands for the zero time) and the metadata bytes.
//
// # Deleting a stream's offsets
//
// Offsets are keyed by group first, which makes the frequent operations cheap
// (GetOffset is a point read, ListOffsets one range scan, DeleteOffsets one
// range tombstone) and keeps an offset commit to a single key write. The rare
// DeleteStreamOffsets has no secondary index to read; instead it skip-scans
// the groups: one seek per group to find whether the group has offsets on the
// stream, then one range tombstone per group that has. Its cost is
// O(groups × log n), independent of the number of partitions, and the hot
// commit path pays nothing for it (a stream→group index would double every
// commit's writes).
//
// Because that skip-scan reads before it writes, a transaction that calls
// DeleteStreamOffsets takes the store's commit lock exclusively from that call
// until it commits; every other Update takes it shared only while committing.
// No offset commit can therefore land between the scan and the deletion, so
// a stream that is deleted and re-created never inherits stale offsets.
//
// # Transactions
//
// Reads inside an Update (the Store getters) see the committed state only,
// not the transaction's own writes. The function passed to Update must not
// call Update itself and should be short: a transaction holding the
// exclusive commit lock blocks every other commit.
//
// # Locks
//
// Store.commitMu is shared by a batch while it commits, and exclusive from a
// DeleteStreamOffsets call until its transaction ends. Store.prepareMu is
// held while one commit writes its batch to the log (failure.go); a leaf.
// lifecycle.mu is a leaf lock, held only to count operations in flight
// (Close waits on its condition variable, which releases it). Order:
// commitMu before prepareMu and lifecycle.mu; nothing is acquired while
// prepareMu or lifecycle.mu is held.
//
// # Faults
//
// A commit that fails in the write-ahead log fails the store: that Update
// and every later one return ErrFailed wrapping the cause, until the store
// is reopened; reads go on. See failure.go.
package state
