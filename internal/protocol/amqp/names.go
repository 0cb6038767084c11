package amqp

import (
	"fmt"
	"strings"

	"github.com/weirmq/weir/internal/broker"
)

// AMQP names and broker names (docs/PROTOCOLS.md, "Names and virtual
// hosts"). AMQP queue and exchange names are any string of up to 255
// bytes, scoped by a virtual host; broker names follow Kafka's topic rules
// ([a-zA-Z0-9._-], at most 249 characters) and have no vhosts. A name of
// vhost "/" that is already a valid broker name is used as it is, so every
// protocol sees the same stream; any other name — of another vhost, with
// other characters, or starting with the reserved ReservedPrefix — is
// encoded as
//
//	_amqp.<vhost>.<name>
//
// with both parts escaped: letters, digits and '-' stay, '.' stays in the
// name part, '_' becomes "__" and every other byte '_' and two hex digits.
// The mapping is one to one, so two AMQP names never meet in the broker,
// and a stream's name tells which vhost and AMQP name it has (Kafka
// clients reach the queue "orders" of vhost "shop" as the topic
// "_amqp.shop.orders").

// ReservedPrefix starts every encoded name; names of vhost "/" starting
// with it are encoded too, so no AMQP name is taken for an encoded one.
const ReservedPrefix = "_amqp"

const encodedPrefix = ReservedPrefix + "."

// DefaultVhost is the vhost that always exists and whose names are the
// broker's own.
const DefaultVhost = "/"

// BrokerName is the broker name of the AMQP queue or exchange name of
// vhost. The empty name (the default exchange) and inbox names (direct
// reply-to, reached from every vhost) stay as they are. The result may be
// too long for the broker (checkName says so).
func BrokerName(vhost, name string) string {
	if name == "" || broker.IsInbox(name) {
		return name
	}
	if vhost == DefaultVhost && !strings.HasPrefix(name, ReservedPrefix) && broker.ValidateStreamName(name) == nil {
		return name
	}
	var b strings.Builder
	b.Grow(len(encodedPrefix) + len(vhost) + len(name) + 8)
	b.WriteString(encodedPrefix)
	escapeName(&b, vhost, false)
	b.WriteByte('.')
	escapeName(&b, name, true)
	return b.String()
}

// ParseBrokerName is the inverse of BrokerName: the vhost and AMQP name of
// a broker name. Names that are not encoded are of vhost "/".
func ParseBrokerName(name string) (vhost, amqpName string, err error) {
	if !strings.HasPrefix(name, encodedPrefix) {
		return DefaultVhost, name, nil
	}
	rest := name[len(encodedPrefix):]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return "", "", fmt.Errorf("%q is not an encoded AMQP name: no '.' after the vhost", name)
	}
	if vhost, err = unescapeName(rest[:dot]); err != nil {
		return "", "", fmt.Errorf("%q: vhost: %w", name, err)
	}
	if amqpName, err = unescapeName(rest[dot+1:]); err != nil {
		return "", "", fmt.Errorf("%q: name: %w", name, err)
	}
	return vhost, amqpName, nil
}

// displayName is the AMQP name of a broker name (in x-death headers), or
// the broker name itself when it does not decode.
func displayName(name string) string {
	if _, n, err := ParseBrokerName(name); err == nil {
		return n
	}
	return name
}

// VhostPrefix is what the broker names of every queue and exchange of a
// vhost other than "/" start with.
func VhostPrefix(vhost string) string {
	var b strings.Builder
	b.WriteString(encodedPrefix)
	escapeName(&b, vhost, false)
	b.WriteByte('.')
	return b.String()
}

const hexDigits = "0123456789ABCDEF"

func escapeName(b *strings.Builder, s string, keepDot bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.' && keepDot:
			b.WriteByte(c)
		case c == '_':
			b.WriteString("__")
		default:
			b.WriteByte('_')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
}

func unescapeName(s string) (string, error) {
	if !strings.Contains(s, "_") {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			out = append(out, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '_' {
			out = append(out, '_')
			i++
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("escape at position %d is cut short", i)
		}
		hi, lo := strings.IndexByte(hexDigits, s[i+1]), strings.IndexByte(hexDigits, s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("escape %q at position %d is not '_' and two hex digits", s[i:i+3], i)
		}
		out = append(out, byte(hi<<4|lo))
		i += 2
	}
	return string(out), nil
}

// checkName tells why an AMQP name cannot be created in the broker: an
// encoded name longer than the broker's names may be.
func checkName(kind, vhost, name, brokerName string) error {
	if len(brokerName) > broker.MaxNameLength {
		return fmt.Errorf("%s name '%s' is too long for vhost '%s': %d bytes once encoded as a Weir name (at most %d; docs/PROTOCOLS.md)",
			kind, name, vhost, len(brokerName), broker.MaxNameLength)
	}
	if err := broker.ValidateStreamName(brokerName); err != nil {
		return fmt.Errorf("%s name '%s': %v", kind, name, err)
	}
	return nil
}
