package group

import (
	"maps"
	"reflect"
	"slices"
	"testing"
)

// byMember inverts a target map into member id → sorted "stream/partition".
func byMember(targets map[Partition]string) map[string][]string {
	out := make(map[string][]string)
	for _, p := range slices.SortedFunc(maps.Keys(targets), comparePartitions) {
		out[targets[p]] = append(out[targets[p]], p.String())
	}
	return out
}

func TestAssign(t *testing.T) {
	abc := func(streams ...string) []assignee {
		return []assignee{{"a", streams}, {"b", streams}, {"c", streams}}
	}
	tests := []struct {
		name     string
		strategy Strategy
		members  []assignee
		counts   map[string]int32
		want     map[string][]string
	}{
		{
			name:     "range uneven: first n%m members get one more",
			strategy: Range,
			members:  abc("s"),
			counts:   map[string]int32{"s": 7},
			want: map[string][]string{
				"a": {"s/0", "s/1", "s/2"},
				"b": {"s/3", "s/4"},
				"c": {"s/5", "s/6"},
			},
		},
		{
			name:     "range is per stream over that stream's consumers",
			strategy: Range,
			members:  []assignee{{"a", []string{"s", "t"}}, {"b", []string{"t"}}, {"c", []string{"s"}}},
			counts:   map[string]int32{"s": 3, "t": 5},
			want: map[string][]string{
				"a": {"s/0", "s/1", "t/0", "t/1", "t/2"},
				"b": {"t/3", "t/4"},
				"c": {"s/2"},
			},
		},
		{
			name:     "range each stream starts again at the first member",
			strategy: Range,
			members:  []assignee{{"a", []string{"s", "t"}}, {"b", []string{"s", "t"}}},
			counts:   map[string]int32{"s": 3, "t": 3},
			want: map[string][]string{
				"a": {"s/0", "s/1", "t/0", "t/1"},
				"b": {"s/2", "t/2"},
			},
		},
		{
			name:     "range zero partitions",
			strategy: Range,
			members:  abc("s", "t"),
			counts:   map[string]int32{"s": 0, "t": 2},
			want: map[string][]string{
				"a": {"t/0"},
				"b": {"t/1"},
			},
		},
		{
			name:     "range more members than partitions",
			strategy: Range,
			members:  []assignee{{"d", []string{"s"}}, {"c", []string{"s"}}, {"b", []string{"s"}}, {"a", []string{"s"}}},
			counts:   map[string]int32{"s": 2},
			want: map[string][]string{
				"a": {"s/0"},
				"b": {"s/1"},
			},
		},
		{
			name:     "range unsorted members are sorted by id",
			strategy: Range,
			members:  []assignee{{"c", []string{"s"}}, {"a", []string{"s"}}, {"b", []string{"s"}}},
			counts:   map[string]int32{"s": 4},
			want: map[string][]string{
				"a": {"s/0", "s/1"},
				"b": {"s/2"},
				"c": {"s/3"},
			},
		},
		{
			name:     "range stream nobody consumes gets no targets",
			strategy: Range,
			members:  []assignee{{"a", []string{"s"}}},
			counts:   map[string]int32{"s": 1, "u": 3},
			want:     map[string][]string{"a": {"s/0"}},
		},
		{
			name:     "range no members",
			strategy: Range,
			counts:   map[string]int32{"s": 3},
			want:     map[string][]string{},
		},
		{
			name:     "roundrobin uneven",
			strategy: RoundRobin,
			members:  abc("s"),
			counts:   map[string]int32{"s": 7},
			want: map[string][]string{
				"a": {"s/0", "s/3", "s/6"},
				"b": {"s/1", "s/4"},
				"c": {"s/2", "s/5"},
			},
		},
		{
			name:     "roundrobin continues across streams and skips non-consumers",
			strategy: RoundRobin,
			members:  []assignee{{"a", []string{"s", "t"}}, {"b", []string{"t"}}, {"c", []string{"s", "t"}}},
			counts:   map[string]int32{"s": 3, "t": 4},
			want: map[string][]string{
				"a": {"s/0", "s/2", "t/2"},
				"b": {"t/0", "t/3"},
				"c": {"s/1", "t/1"},
			},
		},
		{
			name:     "roundrobin members on disjoint streams",
			strategy: RoundRobin,
			members:  []assignee{{"a", []string{"s"}}, {"b", []string{"t"}}},
			counts:   map[string]int32{"s": 3, "t": 2},
			want: map[string][]string{
				"a": {"s/0", "s/1", "s/2"},
				"b": {"t/0", "t/1"},
			},
		},
		{
			name:     "roundrobin zero partitions",
			strategy: RoundRobin,
			members:  []assignee{{"a", []string{"s", "t"}}, {"b", []string{"s", "t"}}},
			counts:   map[string]int32{"s": 0, "t": 3},
			want: map[string][]string{
				"a": {"t/0", "t/2"},
				"b": {"t/1"},
			},
		},
		{
			name:     "roundrobin more members than partitions",
			strategy: RoundRobin,
			members:  []assignee{{"a", []string{"s", "t"}}, {"b", []string{"s", "t"}}, {"c", []string{"s", "t"}}, {"d", []string{"s", "t"}}},
			counts:   map[string]int32{"s": 2, "t": 1},
			want: map[string][]string{
				"a": {"s/0"},
				"b": {"s/1"},
				"c": {"t/0"},
			},
		},
		{
			name:     "roundrobin stream nobody consumes gets no targets",
			strategy: RoundRobin,
			members:  []assignee{{"b", []string{"s"}}, {"a", []string{"s"}}},
			counts:   map[string]int32{"s": 3, "u": 2},
			want:     map[string][]string{"a": {"s/0", "s/2"}, "b": {"s/1"}},
		},
		{
			name:     "roundrobin no members",
			strategy: RoundRobin,
			counts:   map[string]int32{"s": 3},
			want:     map[string][]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := slices.Clone(tt.members)
			got := byMember(assign(tt.strategy, members, tt.counts))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("assign(%s) =\n%v\nwant\n%v", tt.strategy, got, tt.want)
			}
			if !reflect.DeepEqual(members, tt.members) {
				t.Errorf("assign reordered its input: %v", members)
			}
		})
	}
}
