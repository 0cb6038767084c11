package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleListGroups answers ListGroups (key 16): the Kafka groups in memory,
// and every other group Weir knows (native groups with members, groups with
// committed offsets), filtered by state from v4.
func handleListGroups(c *conn, req *kmsg.ListGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	b := c.s.cfg.Broker
	add := func(name, protocolType, state string) {
		if !c.groupVisible(name) {
			return // as Kafka lists only the groups the user may describe
		}
		if len(req.StatesFilter) > 0 && !slices.Contains(req.StatesFilter, state) {
			return
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState, g.GroupType = name, protocolType, state, "classic"
		resp.Groups = append(resp.Groups, g)
	}
	seen := make(map[string]bool)
	for _, info := range b.ListClassicGroups() {
		seen[info.Group] = true
		add(info.Group, info.ProtocolType, info.State)
	}
	names, err := b.ListGroups()
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	for _, name := range names {
		if seen[name] {
			continue
		}
		if info, err := b.DescribeGroup(name); err == nil && len(info.Members) > 0 {
			add(name, nativeProtocolType, "Stable")
		} else {
			add(name, "consumer", "Empty")
		}
	}
	return resp, nil
}
