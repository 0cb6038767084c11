package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/weirmq/weir/internal/state"
)

// GroupSettings are a group's stored settings: what a group whose members
// do not bring their own (Kafka share groups, whose members send only
// their subscriptions) uses instead of the defaults. A zero field means the
// default. They are kept in the catalog (kind group config), so they
// outlive restarts and may exist before the group has members.
type GroupSettings struct {
	// SharedStart is where the shared subscriptions the group creates
	// start (StartEarliest or StartLatest; nil: the creator's default).
	// Subscriptions that exist keep their start.
	SharedStart *StartKind
	// AckTimeout is the ack timeout of the shared subscriptions the group
	// creates (0: DefaultAckTimeout).
	AckTimeout time.Duration
	// SessionTimeout and HeartbeatInterval bound the members' heartbeats.
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
}

type groupSettingsMeta struct {
	Version             int    `json:"v"`
	SharedStart         string `json:"shared_start,omitempty"`
	AckTimeoutMs        int64  `json:"ack_timeout_ms,omitempty"`
	SessionTimeoutMs    int64  `json:"session_timeout_ms,omitempty"`
	HeartbeatIntervalMs int64  `json:"heartbeat_interval_ms,omitempty"`
}

// GroupSettings returns a group's stored settings (all zero when none are
// stored).
func (b *Broker) GroupSettings(groupName string) (GroupSettings, error) {
	if err := ValidateGroupName(groupName); err != nil {
		return GroupSettings{}, err
	}
	v, err := b.state.GetCatalog(state.KindGroupConfig, groupName)
	if errors.Is(err, state.ErrNotFound) {
		return GroupSettings{}, nil
	}
	if err != nil {
		return GroupSettings{}, err
	}
	var m groupSettingsMeta
	if err := json.Unmarshal(v, &m); err != nil || m.Version != 1 {
		return GroupSettings{}, fmt.Errorf("broker: group %q: malformed settings %q", groupName, v)
	}
	gs := GroupSettings{
		AckTimeout:        time.Duration(m.AckTimeoutMs) * time.Millisecond,
		SessionTimeout:    time.Duration(m.SessionTimeoutMs) * time.Millisecond,
		HeartbeatInterval: time.Duration(m.HeartbeatIntervalMs) * time.Millisecond,
	}
	var start StartKind
	switch m.SharedStart {
	case "earliest":
		start = StartEarliest
		gs.SharedStart = &start
	case "latest":
		start = StartLatest
		gs.SharedStart = &start
	}
	return gs, nil
}

// SetGroupSettings stores a group's settings (all zero deletes them).
func (b *Broker) SetGroupSettings(groupName string, gs GroupSettings) error {
	if err := ValidateGroupName(groupName); err != nil {
		return err
	}
	if gs.AckTimeout < 0 || gs.SessionTimeout < 0 || gs.HeartbeatInterval < 0 {
		return fmt.Errorf("%w: group settings must not be negative", ErrInvalidArgument)
	}
	m := groupSettingsMeta{Version: 1, AckTimeoutMs: gs.AckTimeout.Milliseconds(),
		SessionTimeoutMs: gs.SessionTimeout.Milliseconds(), HeartbeatIntervalMs: gs.HeartbeatInterval.Milliseconds()}
	switch {
	case gs.SharedStart == nil:
	case *gs.SharedStart == StartEarliest:
		m.SharedStart = "earliest"
	case *gs.SharedStart == StartLatest:
		m.SharedStart = "latest"
	default:
		return fmt.Errorf("%w: a group's shared subscriptions start at the earliest or the latest offset", ErrInvalidArgument)
	}
	return b.state.Update(func(tx *state.Tx) error {
		if m == (groupSettingsMeta{Version: 1}) {
			return tx.DeleteCatalog(state.KindGroupConfig, groupName)
		}
		v, _ := json.Marshal(m)
		return tx.PutCatalog(state.KindGroupConfig, groupName, v)
	})
}
