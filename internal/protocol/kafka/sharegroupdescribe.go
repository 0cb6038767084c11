package kafka

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shareAssignor is the assignor ShareGroupDescribe names: every member is
// assigned every partition of the topics it subscribes to.
const shareAssignor = "weir-all-partitions"

// handleShareGroupDescribe answers ShareGroupDescribe (key 77): a share
// group with its members, their epochs, subscriptions and assignments
// (Stable, or Empty once every member left); a shared subscription of that
// name on some stream that no Kafka member joined yet (a natively created
// queue, say) as Empty; any other name GROUP_ID_NOT_FOUND.
func handleShareGroupDescribe(c *conn, req *kmsg.ShareGroupDescribeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	sc := c.s.share
	for _, name := range req.GroupIDs {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID = name
		rg.Assignor = shareAssignor
		sc.mu.Lock()
		g := sc.groups[name]
		if g != nil {
			rg.GroupEpoch, rg.AssignmentEpoch = g.epoch, g.epoch
			rg.GroupState = "Empty"
			if len(g.members) > 0 {
				rg.GroupState = "Stable"
			}
			ids := make([]string, 0, len(g.members))
			for id := range g.members {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				m := g.members[id]
				rm := kmsg.NewShareGroupDescribeResponseGroupMember()
				rm.MemberID, rm.MemberEpoch, rm.RackID = m.id, m.epoch, m.rack
				rm.ClientID, rm.ClientHost = m.clientID, m.clientHost
				rm.SubscribedTopicNames = slices.Clone(m.topics)
				for _, a := range m.assigned {
					tp := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
					tp.TopicID, tp.Topic, tp.Partitions = a.id, a.topic, slices.Clone(a.partitions)
					rm.Assignment.TopicPartitions = append(rm.Assignment.TopicPartitions, tp)
				}
				rg.Members = append(rg.Members, rm)
			}
		}
		sc.mu.Unlock()
		if g == nil {
			if c.s.hasSubscriptionNamed(name) {
				rg.GroupState = "Empty"
			} else {
				rg.ErrorCode = kerr.GroupIDNotFound.Code
				rg.ErrorMessage = errorMessage(fmt.Errorf("no share group or shared subscription named %q", name))
				rg.GroupState = "Dead"
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

// hasSubscriptionNamed reports whether some stream has a shared
// subscription of that name.
func (s *Server) hasSubscriptionNamed(name string) bool {
	b := s.cfg.Broker
	for _, info := range b.ListStreams() {
		if _, err := b.DescribeSubscription(info.Config.Name, name); err == nil {
			return true
		}
	}
	return false
}
