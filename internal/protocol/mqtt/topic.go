package mqtt

import "strings"

// Topic mapping (docs/PROTOCOLS.md, "MQTT front end"): an MQTT topic is
// a routing key of the topic exchange with the separators swapped, '/' to
// '.' and '.' to '/', so the mapping is one to one both ways; in filters
// '+' becomes '*' and '#' stays '#'.

func swapSeparators(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, s)
}

// RoutingKey is the routing key an MQTT topic name publishes with.
func RoutingKey(topic string) string { return swapSeparators(topic) }

// TopicOf is the MQTT topic name of a routing key.
func TopicOf(routingKey string) string { return swapSeparators(routingKey) }

// BindingKey is the topic-exchange pattern of an MQTT topic filter. It may
// match more than the filter (a literal '*' level, '$' topics); deliveries
// are checked with MatchTopic.
func BindingKey(filter string) string {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch l {
		case "+":
			levels[i] = "*"
		case "#":
			levels[i] = "#"
		default:
			levels[i] = strings.ReplaceAll(l, ".", "/")
		}
	}
	return strings.Join(levels, ".")
}

// ValidTopicName reports whether s may be published to: not empty, no
// wildcard characters.
func ValidTopicName(s string) bool {
	return s != "" && len(s) <= 65535 && !strings.ContainsAny(s, "+#")
}

// ValidFilter reports whether s is a valid topic filter: '#' only as the
// whole last level, '+' only as a whole level.
func ValidFilter(s string) bool {
	if s == "" || len(s) > 65535 {
		return false
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") {
			if l == "+" {
				continue
			}
			if l == "#" && i == len(levels)-1 {
				continue
			}
			return false
		}
	}
	return true
}

// MatchTopic reports whether a topic name matches a filter under MQTT's
// rules: '+' one level, '#' this level and every level below, and filters
// starting with a wildcard do not match topics starting with '$'.
func MatchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore {
			return !tmore
		}
		if !tmore {
			// "a/#" matches "a"; anything else needs more levels.
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

// sharePrefix starts a shared subscription's filter.
const sharePrefix = "$share/"

// parseShared splits "$share/group/filter". ok is false for other
// filters; valid is false for a malformed shared one.
func parseShared(s string) (group, filter string, ok, valid bool) {
	if !strings.HasPrefix(s, sharePrefix) {
		return "", "", false, false
	}
	group, filter, found := strings.Cut(s[len(sharePrefix):], "/")
	if !found || group == "" || strings.ContainsAny(group, "+#") || !ValidFilter(filter) {
		return "", "", true, false
	}
	return group, filter, true, true
}
