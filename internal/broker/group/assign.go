package group

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Partition names one partition of one stream.
type Partition struct {
	Stream    string
	Partition int32
}

// String returns "stream/partition".
func (p Partition) String() string { return fmt.Sprintf("%s/%d", p.Stream, p.Partition) }

// comparePartitions orders partitions by stream, then partition number.
func comparePartitions(a, b Partition) int {
	return cmp.Or(strings.Compare(a.Stream, b.Stream), cmp.Compare(a.Partition, b.Partition))
}

// Strategy is how a group spreads partitions over its members.
type Strategy string

// Assignment strategies.
const (
	// Range gives each member, per stream, a contiguous range of that
	// stream's partitions (Kafka's RangeAssignor).
	Range Strategy = "range"
	// RoundRobin deals all partitions of all streams in turn to the members
	// (Kafka's RoundRobinAssignor).
	RoundRobin Strategy = "roundrobin"
)

// valid reports whether s names a strategy ("" is not one).
func (s Strategy) valid() bool { return s == Range || s == RoundRobin }

// assignee is a member as the assignment strategies see it.
type assignee struct {
	id      string
	streams []string // sorted, no duplicates
}

func (a assignee) consumes(stream string) bool {
	_, found := slices.BinarySearch(a.streams, stream)
	return found
}

// assign computes the target member of every partition of every stream in
// counts (stream → partition count) that at least one member consumes.
// Partitions of a stream no member consumes get no target and are absent
// from the result. It is deterministic: members are taken sorted by id,
// streams by name, whatever order they are given in.
func assign(strategy Strategy, members []assignee, counts map[string]int32) map[Partition]string {
	members = slices.SortedFunc(slices.Values(members), func(a, b assignee) int { return strings.Compare(a.id, b.id) })
	streams := slices.Sorted(maps.Keys(counts))
	if strategy == RoundRobin {
		return assignRoundRobin(members, streams, counts)
	}
	return assignRange(members, streams, counts)
}

// assignRange splits, per stream, partitions 0..n-1 into contiguous ranges
// over the m members consuming that stream (sorted by id); the first n%m
// members get one partition more than the others.
func assignRange(members []assignee, streams []string, counts map[string]int32) map[Partition]string {
	targets := make(map[Partition]string)
	var consumers []string
	for _, stream := range streams {
		consumers = consumers[:0]
		for _, m := range members {
			if m.consumes(stream) {
				consumers = append(consumers, m.id)
			}
		}
		if len(consumers) == 0 {
			continue
		}
		n := counts[stream]
		k := int32(len(consumers))
		perMember, extra := n/k, n%k
		var next int32
		for i, id := range consumers {
			size := perMember
			if int32(i) < extra {
				size++
			}
			for p := next; p < next+size; p++ {
				targets[Partition{stream, p}] = id
			}
			next += size
		}
	}
	return targets
}

// assignRoundRobin deals all (stream, partition) pairs, sorted, in turn to
// the members sorted by id, skipping a member that does not consume the
// partition's stream (the turn passes to the next member that does).
func assignRoundRobin(members []assignee, streams []string, counts map[string]int32) map[Partition]string {
	targets := make(map[Partition]string)
	next := 0 // index of the member whose turn it is
	for _, stream := range streams {
		if !slices.ContainsFunc(members, func(m assignee) bool { return m.consumes(stream) }) {
			continue
		}
		for p := range counts[stream] {
			for !members[next].consumes(stream) {
				next = (next + 1) % len(members)
			}
			targets[Partition{stream, p}] = members[next].id
			next = (next + 1) % len(members)
		}
	}
	return targets
}
