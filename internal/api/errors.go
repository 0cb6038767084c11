package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/weirmq/weir/internal/broker"
)

// errShuttingDown ends the subscriptions and long polls that are still
// running when the server stops.
var errShuttingDown = errors.New("the server is shutting down; reconnect to another node or retry shortly")

// errorCodes is the one table from the broker's errors to the API's codes.
// The first entry that matches (errors.Is) wins; an error matching none is
// an Internal error and is logged.
var errorCodes = []struct {
	err  error
	code connect.Code
}{
	{broker.ErrForbidden, connect.CodePermissionDenied},
	{broker.ErrStreamNotFound, connect.CodeNotFound},
	{broker.ErrPartitionNotFound, connect.CodeNotFound},
	{broker.ErrGroupNotFound, connect.CodeNotFound},
	{broker.ErrSubscriptionNotFound, connect.CodeNotFound},
	{broker.ErrExchangeNotFound, connect.CodeNotFound},
	{broker.ErrStreamExists, connect.CodeAlreadyExists},
	{broker.ErrSubscriptionExists, connect.CodeAlreadyExists},
	{broker.ErrExchangeExists, connect.CodeAlreadyExists},
	{broker.ErrInvalidArgument, connect.CodeInvalidArgument},
	{broker.ErrRecordTooLarge, connect.CodeResourceExhausted},
	{broker.ErrQueueFull, connect.CodeResourceExhausted},
	{broker.ErrDiskFull, connect.CodeResourceExhausted},
	{broker.ErrOffsetOutOfRange, connect.CodeOutOfRange},
	{broker.ErrStaleGeneration, connect.CodeFailedPrecondition},
	{broker.ErrNotAssigned, connect.CodeFailedPrecondition},
	{broker.ErrGroupBusy, connect.CodeFailedPrecondition},
	{broker.ErrUnknownMember, connect.CodeFailedPrecondition},
	{broker.ErrNotInFlight, connect.CodeFailedPrecondition},
	{broker.ErrClosed, connect.CodeUnavailable},
	{errShuttingDown, connect.CodeUnavailable},
	{context.Canceled, connect.CodeCanceled},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
}

// codeOf returns the API code for err, and false when err is none of the
// errors the table knows.
func codeOf(err error) (connect.Code, bool) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code, true
		}
	}
	return connect.CodeInternal, false
}

// toConnectError turns an error of the broker (or of a context) into the
// error the client sees, keeping its message, which already says what went
// wrong in words. ctx is the call's context: if the server's shutdown
// cancelled it, the client is told so. Errors the table does not know are
// logged, since they point at a bug or a failing disk.
func toConnectError(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, errShuttingDown) {
		return connect.NewError(connect.CodeUnavailable, errShuttingDown)
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	code, known := codeOf(err)
	if !known {
		logger.Error("internal error", "method", method, "err", err)
	}
	return connect.NewError(code, err)
}

// invalidArgument reports a request the API rejects before it reaches the
// broker: a missing or out-of-range field, named as in the proto.
func invalidArgument(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}
