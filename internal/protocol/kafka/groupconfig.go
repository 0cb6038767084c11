package kafka

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// Group configurations (Kafka's GROUP resources of DescribeConfigs and
// IncrementalAlterConfigs, KIP-848/KIP-932) map onto the broker's stored
// group settings. Those that mean something for share groups are kept;
// the consumer.* ones belong to the KIP-848 consumer protocol, which Weir
// does not speak (classic members bring their timeouts in JoinGroup), and
// are refused with INVALID_CONFIG rather than stored without effect.

// Names of the supported group configurations.
const (
	cfgShareAutoOffsetReset  = "share.auto.offset.reset"
	cfgShareLockDuration     = "share.record.lock.duration.ms"
	cfgShareSessionTimeout   = "share.session.timeout.ms"
	cfgShareHeartbeat        = "share.heartbeat.interval.ms"
	cfgShareIsolationLevel   = "share.isolation.level"
	incrementalOpSet         = 0
	incrementalOpDelete      = 1
	minGroupTimeout          = time.Second
	maxGroupTimeout          = 30 * time.Minute
	shareDefaultLockDuration = broker.DefaultAckTimeout
)

// groupConfigNames lists the group configurations in DescribeConfigs order.
var groupConfigNames = []string{cfgShareAutoOffsetReset, cfgShareLockDuration, cfgShareSessionTimeout, cfgShareHeartbeat, cfgShareIsolationLevel}

// groupConfigValue is a group configuration's value, and whether it was
// set (else it is the default).
type groupConfigValue struct {
	value string
	set   bool
}

// groupConfigs are a group's configurations.
func (s *Server) groupConfigs(gs broker.GroupSettings) map[string]groupConfigValue {
	ms := func(d, def time.Duration) string { return strconv.FormatInt(cmpOr(d, def).Milliseconds(), 10) }
	out := map[string]groupConfigValue{
		cfgShareAutoOffsetReset: {"latest", gs.SharedStart != nil},
		cfgShareLockDuration:    {ms(gs.AckTimeout, shareDefaultLockDuration), gs.AckTimeout > 0},
		cfgShareSessionTimeout:  {ms(gs.SessionTimeout, s.cfg.ShareSessionTimeout), gs.SessionTimeout > 0},
		cfgShareHeartbeat:       {ms(gs.HeartbeatInterval, s.cfg.ShareHeartbeatInterval), gs.HeartbeatInterval > 0},
		cfgShareIsolationLevel:  {"read_uncommitted", false},
	}
	if gs.SharedStart != nil && *gs.SharedStart == broker.StartEarliest {
		out[cfgShareAutoOffsetReset] = groupConfigValue{"earliest", true}
	}
	return out
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// describeGroupConfigs fills a DescribeConfigs resource of type GROUP.
func describeGroupConfigs(c *conn, r *kmsg.DescribeConfigsRequestResource, rr *kmsg.DescribeConfigsResponseResource) {
	gs, err := c.s.cfg.Broker.GroupSettings(r.ResourceName)
	if err != nil {
		rr.ErrorCode, rr.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(err)
		if !errors.Is(err, broker.ErrInvalidArgument) {
			rr.ErrorCode = errorCode(err)
		}
		return
	}
	configs := c.s.groupConfigs(gs)
	for _, name := range groupConfigNames {
		if r.ConfigNames != nil && !slices.Contains(r.ConfigNames, name) {
			continue
		}
		v := configs[name]
		rc := kmsg.NewDescribeConfigsResponseResourceConfig()
		rc.Name, rc.Value = name, &v.value
		rc.Source, rc.IsDefault = kmsg.ConfigSourceDefaultConfig, !v.set
		if v.set {
			rc.Source = kmsg.ConfigSourceGroupConfig
		}
		rc.ConfigType = kmsg.ConfigTypeInt
		if name == cfgShareAutoOffsetReset || name == cfgShareIsolationLevel {
			rc.ConfigType = kmsg.ConfigTypeString
		}
		rr.Configs = append(rr.Configs, rc)
	}
}

// handleIncrementalAlterConfigs answers IncrementalAlterConfigs (key 44)
// for GROUP resources: SET and DELETE of the configurations above, checked
// all together before any is stored (a resource's changes apply entirely
// or not at all); ValidateOnly checks without storing. Topic and broker
// configurations cannot be altered (INVALID_REQUEST per resource).
func handleIncrementalAlterConfigs(c *conn, req *kmsg.IncrementalAlterConfigsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		if r.ResourceType != kmsg.ConfigResourceTypeGroupConfig {
			rr.ErrorCode = kerr.InvalidRequest.Code
			rr.ErrorMessage = errorMessage(fmt.Errorf("altering %v configurations is not supported: Weir alters group configurations only", r.ResourceType))
			resp.Resources = append(resp.Resources, rr)
			continue
		}
		err := alterGroupConfigs(c, r.ResourceName, r.Configs, req.ValidateOnly)
		switch {
		case errors.Is(err, errInvalidConfig):
			rr.ErrorCode = kerr.InvalidConfig.Code
		case errors.Is(err, broker.ErrInvalidArgument):
			rr.ErrorCode = errorCodeInvalidGroup
		case err != nil:
			rr.ErrorCode = errorCode(err)
		}
		rr.ErrorMessage = errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

// alterGroupConfigs applies one resource's changes to a group's settings.
func alterGroupConfigs(c *conn, group string, changes []kmsg.IncrementalAlterConfigsRequestResourceConfig, validateOnly bool) error {
	b := c.s.cfg.Broker
	gs, err := b.GroupSettings(group)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		var value string
		switch ch.Op {
		case incrementalOpSet:
			if ch.Value == nil {
				return fmt.Errorf("%w: SET of %s without a value", errInvalidConfig, ch.Name)
			}
			value = *ch.Value
		case incrementalOpDelete:
		default:
			return fmt.Errorf("%w: %s is not a list: only SET and DELETE apply", errInvalidConfig, ch.Name)
		}
		if err := applyGroupConfig(&gs, ch.Name, value, ch.Op == incrementalOpDelete); err != nil {
			return err
		}
	}
	session := cmpOr(gs.SessionTimeout, c.s.cfg.ShareSessionTimeout)
	if gs.HeartbeatInterval > 0 && gs.HeartbeatInterval >= session {
		return fmt.Errorf("%w: %s (%v) must be less than %s (%v)", errInvalidConfig, cfgShareHeartbeat, gs.HeartbeatInterval, cfgShareSessionTimeout, session)
	}
	if validateOnly {
		return nil
	}
	return b.SetGroupSettings(group, gs)
}

// applyGroupConfig sets (or, with reset, returns to its default) one group
// configuration.
func applyGroupConfig(gs *broker.GroupSettings, name, value string, reset bool) error {
	duration := func(d *time.Duration) error {
		if reset {
			*d = 0
			return nil
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < minGroupTimeout.Milliseconds() || n > maxGroupTimeout.Milliseconds() {
			return fmt.Errorf("%w: %s=%q must be a number of milliseconds from %d to %d", errInvalidConfig, name, value, minGroupTimeout.Milliseconds(), maxGroupTimeout.Milliseconds())
		}
		*d = time.Duration(n) * time.Millisecond
		return nil
	}
	switch name {
	case cfgShareAutoOffsetReset:
		if reset {
			gs.SharedStart = nil
			return nil
		}
		var start broker.StartKind
		switch value {
		case "earliest":
			start = broker.StartEarliest
		case "latest":
			start = broker.StartLatest
		default:
			return fmt.Errorf("%w: %s=%q (Weir supports earliest or latest)", errInvalidConfig, name, value)
		}
		gs.SharedStart = &start
	case cfgShareLockDuration:
		return duration(&gs.AckTimeout)
	case cfgShareSessionTimeout:
		return duration(&gs.SessionTimeout)
	case cfgShareHeartbeat:
		return duration(&gs.HeartbeatInterval)
	case cfgShareIsolationLevel:
		if !reset && value != "read_uncommitted" {
			return fmt.Errorf("%w: %s=%q: share groups read uncommitted", errInvalidConfig, name, value)
		}
	case "consumer.session.timeout.ms", "consumer.heartbeat.interval.ms":
		return fmt.Errorf("%w: %s belongs to the KIP-848 consumer protocol, which Weir does not speak (classic members set their session timeout in JoinGroup)", errInvalidConfig, name)
	default:
		return fmt.Errorf("%w: unknown group configuration %q", errInvalidConfig, name)
	}
	return nil
}
