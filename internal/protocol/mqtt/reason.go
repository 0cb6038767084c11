package mqtt

import (
	"errors"

	"github.com/weirmq/weir/internal/broker"
)

// MQTT 5 reason codes (section 2.4) the server sends.
const (
	reasonSuccess                = 0x00
	reasonGrantedQoS1            = 0x01
	reasonDisconnectWithWill     = 0x04
	reasonNoMatchingSubscribers  = 0x10
	reasonNoSubscriptionExisted  = 0x11
	reasonUnspecified            = 0x80
	reasonMalformed              = 0x81
	reasonProtocolError          = 0x82
	reasonImplementationSpecific = 0x83
	reasonUnsupportedVersion     = 0x84
	reasonClientIDNotValid       = 0x85
	reasonBadUserOrPassword      = 0x86
	reasonNotAuthorized          = 0x87
	reasonServerUnavailable      = 0x88
	reasonBadAuthMethod          = 0x8C
	reasonServerShuttingDown     = 0x8B
	reasonKeepAliveTimeout       = 0x8D
	reasonSessionTakenOver       = 0x8E
	reasonTopicFilterInvalid     = 0x8F
	reasonTopicNameInvalid       = 0x90
	reasonPacketIDNotFound       = 0x92
	reasonTopicAliasInvalid      = 0x94
	reasonPacketTooLarge         = 0x95
	reasonQuotaExceeded          = 0x97
)

// MQTT 3.1.1 CONNACK return codes (section 3.2.2.3) and the SUBACK
// failure code.
const (
	returnUnacceptableVersion = 0x01
	returnIdentifierRejected  = 0x02
	returnServerUnavailable   = 0x03
	returnBadUserOrPassword   = 0x04
	subackFailure311          = 0x80
)

// reasonOf is the one table from errors to MQTT 5 reason codes.
func reasonOf(err error) byte {
	switch {
	case err == nil:
		return reasonSuccess
	case errors.Is(err, ErrMalformed):
		return reasonMalformed
	case errors.Is(err, ErrProtocol):
		return reasonProtocolError
	case errors.Is(err, ErrPacketTooLarge), errors.Is(err, broker.ErrRecordTooLarge):
		return reasonPacketTooLarge
	case errors.Is(err, broker.ErrQueueFull), errors.Is(err, broker.ErrDiskFull):
		return reasonQuotaExceeded
	case errors.Is(err, broker.ErrClosed):
		return reasonServerShuttingDown
	default:
		return reasonUnspecified
	}
}

// connectionError closes a connection with a reason code.
type connectionError struct {
	reason byte
	err    error
}

func (e *connectionError) Error() string { return e.err.Error() }
func (e *connectionError) Unwrap() error { return e.err }

func closeWith(reason byte, err error) error { return &connectionError{reason, err} }
