package weir

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"connectrpc.com/connect"
)

// Sentinel errors. Errors from the server match the one of their code with
// errors.Is; the SDK's own checks wrap them too.
var (
	ErrNotFound           = errors.New("not found")             // connect.CodeNotFound: no such stream, group or partition
	ErrAlreadyExists      = errors.New("already exists")        // connect.CodeAlreadyExists
	ErrInvalidArgument    = errors.New("invalid argument")      // connect.CodeInvalidArgument: e.g. a bad name
	ErrFailedPrecondition = errors.New("failed precondition")   // connect.CodeFailedPrecondition: e.g. resetting a group with members
	ErrOutOfRange         = errors.New("out of range")          // connect.CodeOutOfRange: an offset past the end
	ErrAborted            = errors.New("aborted")               // connect.CodeAborted: e.g. a commit with a stale generation
	ErrResourceExhausted  = errors.New("resource exhausted")    // connect.CodeResourceExhausted: e.g. a record over max-record-bytes
	ErrUnavailable        = errors.New("unavailable")           // connect.CodeUnavailable: the server is down or shutting down
	ErrPermissionDenied   = errors.New("permission denied")     // connect.CodePermissionDenied
	ErrUnauthenticated    = errors.New("unauthenticated")       // connect.CodeUnauthenticated
	ErrUnimplemented      = errors.New("unimplemented")         // connect.CodeUnimplemented
	ErrInternal           = errors.New("internal server error") // connect.CodeInternal, CodeDataLoss, CodeUnknown

	// ErrClosed is returned by a Client, Producer or Consumer used after Close.
	ErrClosed = errors.New("weir: closed")
	// ErrNoGroup is returned when committing from a consumer that is not in
	// a group.
	ErrNoGroup = errors.New("weir: commit needs a group consumer")
	// ErrNotShared is returned by Message.Ack, Nack, Reject and Extend of
	// a message that was not delivered through a shared subscription.
	ErrNotShared = errors.New("weir: settling needs a shared-subscription consumer")
	// ErrSettled is returned when settling a message that was acked,
	// nacked or rejected already.
	ErrSettled = errors.New("weir: message already settled")
)

var codeSentinels = map[connect.Code]error{
	connect.CodeNotFound:           ErrNotFound,
	connect.CodeAlreadyExists:      ErrAlreadyExists,
	connect.CodeInvalidArgument:    ErrInvalidArgument,
	connect.CodeFailedPrecondition: ErrFailedPrecondition,
	connect.CodeOutOfRange:         ErrOutOfRange,
	connect.CodeAborted:            ErrAborted,
	connect.CodeResourceExhausted:  ErrResourceExhausted,
	connect.CodeUnavailable:        ErrUnavailable,
	connect.CodePermissionDenied:   ErrPermissionDenied,
	connect.CodeUnauthenticated:    ErrUnauthenticated,
	connect.CodeUnimplemented:      ErrUnimplemented,
	connect.CodeInternal:           ErrInternal,
	connect.CodeDataLoss:           ErrInternal,
	connect.CodeUnknown:            ErrInternal,
}

// Error is an error answered by the server, or a failure to reach it.
// connect.CodeOf(err) is its code; errors.Is matches the sentinel of the
// code; errors.Is(err, context.Canceled) and DeadlineExceeded work for calls
// that ended with their context.
type Error struct {
	// Op is what the client was doing: `describe stream "orders"`.
	Op      string
	Code    connect.Code
	Message string // the server's message
	err     *connect.Error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	} else {
		msg = e.Code.String() + ": " + msg
	}
	if e.Op == "" {
		return msg
	}
	return e.Op + ": " + msg
}

// Unwrap returns the *connect.Error, which unwraps in turn to a context
// error or a network error where there is one.
func (e *Error) Unwrap() error { return e.err }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := codeSentinels[e.Code]
	return ok && s == target
}

// wrapError turns an error of a connect call into an *Error.
func wrapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		ce = connect.NewError(connect.CodeOf(err), err)
	}
	return &Error{Op: op, Code: ce.Code(), Message: ce.Message(), err: ce}
}

// retryable reports whether a failed call or a broken subscription may
// succeed when tried again: the server was unreachable or restarting, or
// the connection broke.
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeInternal,
		connect.CodeAborted, connect.CodeDeadlineExceeded:
		return true
	}
	return false
}

func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "weir-client"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
