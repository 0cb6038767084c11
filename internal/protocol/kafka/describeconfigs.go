package kafka

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleDescribeConfigs answers DescribeConfigs (key 32) for topics (their
// stream settings as Kafka configurations), the broker (node 0) and groups
// (groupconfig.go).
func handleDescribeConfigs(c *conn, req *kmsg.DescribeConfigsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var configs [][2]string
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			info, err := c.s.cfg.Broker.DescribeStream(r.ResourceName)
			if err == nil {
				err = c.describeTopic(r.ResourceName)
			}
			if err != nil {
				rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
				break
			}
			configs = topicConfigs(info, c.s.cfg.MaxRecordBytes)
		case kmsg.ConfigResourceTypeBroker:
			if r.ResourceName != "" && r.ResourceName != strconv.Itoa(nodeID) {
				rr.ErrorCode = kerr.InvalidRequest.Code
				rr.ErrorMessage = errorMessage(fmt.Errorf("unknown broker %q: Weir is node %d", r.ResourceName, nodeID))
				break
			}
			configs = [][2]string{
				{"auto.create.topics.enable", strconv.FormatBool(c.s.cfg.AutoCreateTopics)},
				{"num.partitions", strconv.Itoa(int(c.s.cfg.DefaultPartitions))},
				{"default.replication.factor", "1"},
				{"message.max.bytes", strconv.Itoa(c.s.cfg.MaxRecordBytes + 1024)},
				{"socket.request.max.bytes", strconv.Itoa(c.s.cfg.MaxRequestBytes)},
			}
		case kmsg.ConfigResourceTypeGroupConfig:
			describeGroupConfigs(c, &r, &rr)
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
			rr.ErrorMessage = errorMessage(fmt.Errorf("resource type %v is not supported", r.ResourceType))
		}
		for _, kv := range configs {
			if r.ConfigNames != nil && !slices.Contains(r.ConfigNames, kv[0]) {
				continue
			}
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name, rc.Value = kv[0], &kv[1]
			rc.Source = kmsg.ConfigSourceDefaultConfig
			if r.ResourceType == kmsg.ConfigResourceTypeTopic {
				rc.Source = kmsg.ConfigSourceDynamicTopicConfig
			}
			rc.ConfigType = kmsg.ConfigTypeString
			rr.Configs = append(rr.Configs, rc)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}
