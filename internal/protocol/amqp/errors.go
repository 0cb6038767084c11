package amqp

import (
	"errors"
	"fmt"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// amqpError is an AMQP exception: a soft error closes the channel, a hard
// one the connection (wire.SoftErrors says which).
type amqpError struct {
	code     uint16
	text     string
	classID  uint16
	methodID uint16
}

func (e *amqpError) Error() string { return e.text }

// replyNames are the names RabbitMQ puts before a reply text
// ("NOT_FOUND - no queue 'q' in vhost '/'"); clients show them.
var replyNames = map[uint16]string{
	wire.ContentTooLarge: "CONTENT_TOO_LARGE", wire.NoRoute: "NO_ROUTE", wire.NoConsumers: "NO_CONSUMERS",
	wire.ConnectionForced: "CONNECTION_FORCED", wire.InvalidPath: "INVALID_PATH", wire.AccessRefused: "ACCESS_REFUSED",
	wire.NotFound: "NOT_FOUND", wire.ResourceLocked: "RESOURCE_LOCKED", wire.PreconditionFailed: "PRECONDITION_FAILED",
	wire.FrameError: "FRAME_ERROR", wire.SyntaxError: "SYNTAX_ERROR", wire.CommandInvalid: "COMMAND_INVALID",
	wire.ChannelError: "CHANNEL_ERROR", wire.UnexpectedFrame: "UNEXPECTED_FRAME", wire.ResourceError: "RESOURCE_ERROR",
	wire.NotAllowed: "NOT_ALLOWED", wire.NotImplemented: "NOT_IMPLEMENTED", wire.InternalError: "INTERNAL_ERROR",
}

// exception makes an exception about method m (nil: none).
func exception(code uint16, m wire.Method, format string, args ...any) *amqpError {
	e := &amqpError{code: code, text: replyNames[code] + " - " + fmt.Sprintf(format, args...)}
	if m != nil {
		e.classID, e.methodID = m.ClassIndex(), m.MethodIndex()
	}
	if len(e.text) > 255 {
		e.text = e.text[:255]
	}
	return e
}

// brokerException maps a broker error to its AMQP exception: the one table
// of the front end.
func brokerException(err error, m wire.Method) *amqpError {
	var ae *amqpError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, broker.ErrStreamNotFound), errors.Is(err, broker.ErrSubscriptionNotFound),
		errors.Is(err, broker.ErrExchangeNotFound), errors.Is(err, broker.ErrPartitionNotFound):
		return exception(wire.NotFound, m, "%v", err)
	case errors.Is(err, broker.ErrExchangeExists), errors.Is(err, broker.ErrStreamExists),
		errors.Is(err, broker.ErrSubscriptionExists), errors.Is(err, broker.ErrInvalidArgument),
		errors.Is(err, broker.ErrRecordTooLarge), errors.Is(err, broker.ErrQueueFull),
		errors.Is(err, broker.ErrNotInFlight):
		return exception(wire.PreconditionFailed, m, "%v", err)
	case errors.Is(err, broker.ErrClosed):
		return exception(wire.ConnectionForced, m, "broker shutting down")
	case errors.Is(err, broker.ErrForbidden):
		return exception(wire.AccessRefused, m, "%v", err)
	}
	return exception(wire.InternalError, m, "%v", err)
}

// notFound is 404 for a queue or exchange of the channel's vhost.
func (ch *channel) notFound(m wire.Method, kind, name string) *amqpError {
	return exception(wire.NotFound, m, "no %s '%s' in vhost '%s'", kind, name, ch.c.vhost)
}

// locked is 405 for an exclusive queue of another connection.
func (ch *channel) locked(m wire.Method, queue string) *amqpError {
	return exception(wire.ResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'", queue, ch.c.vhost)
}
