package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weirmq/weir/internal/broker"
)

// errorCodes maps the broker's sentinel errors to Kafka error codes: the one
// table of this protocol. The first match wins.
var errorCodes = []struct {
	err  error
	code *kerr.Error
}{
	{broker.ErrStreamNotFound, kerr.UnknownTopicOrPartition},
	{broker.ErrPartitionNotFound, kerr.UnknownTopicOrPartition},
	{broker.ErrStreamExists, kerr.TopicAlreadyExists},
	{broker.ErrRecordTooLarge, kerr.MessageTooLarge},
	{broker.ErrDiskFull, kerr.KafkaStorageError},    // retriable: producers retry until space returns
	{broker.ErrStateFailed, kerr.KafkaStorageError}, // the state store's disk failed: until a restart
	{broker.ErrEarlierBatchFailed, kerr.KafkaStorageError},
	{broker.ErrCorruptBatch, kerr.CorruptMessage},
	{broker.ErrInvalidBatch, kerr.InvalidRecord},
	{broker.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{broker.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{broker.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{broker.ErrUnsupportedTransaction, kerr.InvalidRecord},
	{broker.ErrProducerFenced, kerr.ProducerFenced},
	{broker.ErrInvalidTxnState, kerr.InvalidTxnState},
	{broker.ErrConcurrentTransactions, kerr.ConcurrentTransactions},
	{broker.ErrInvalidProducerIDMapping, kerr.InvalidProducerIDMapping},
	{broker.ErrInvalidTxnTimeout, kerr.InvalidTransactionTimeout},
	{broker.ErrOperationNotAttempted, kerr.OperationNotAttempted},
	// A publish held at a queue's bound until the request's timeout: the
	// client retries (a full reject-publish queue is a policy violation).
	{context.DeadlineExceeded, kerr.RequestTimedOut},
	{broker.ErrQueueFull, kerr.PolicyViolation},
	{broker.ErrNotInFlight, kerr.InvalidRecordState},
	{broker.ErrUnknownMember, kerr.UnknownMemberID},
	{broker.ErrStaleGeneration, kerr.IllegalGeneration},
	{broker.ErrRebalanceInProgress, kerr.RebalanceInProgress},
	{broker.ErrMemberIDRequired, kerr.MemberIDRequired},
	{broker.ErrInconsistentGroup, kerr.InconsistentGroupProtocol},
	{broker.ErrInvalidSessionTimeout, kerr.InvalidSessionTimeout},
	{broker.ErrFencedInstanceID, kerr.FencedInstanceID},
	{broker.ErrGroupBusy, kerr.InconsistentGroupProtocol},
	{broker.ErrGroupNotFound, kerr.GroupIDNotFound},
	{broker.ErrGroupSubscribed, kerr.GroupSubscribedToTopic},
	{broker.ErrGroupNotEmpty, kerr.NonEmptyGroup},
	{broker.ErrInvalidArgument, kerr.InvalidRequest},
	{broker.ErrClosed, kerr.BrokerNotAvailable},
	{context.Canceled, kerr.RequestTimedOut},
}

// errorCodeInvalidGroup answers a bad group name.
var errorCodeInvalidGroup = kerr.InvalidGroupID.Code

// errorCode is the Kafka error code for err (0 for nil).
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	if code, ok := forbiddenCode(err); ok {
		return code
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

// commitErrorCode is the code of the i-th offset of a commit that failed
// as a whole with err, or else with errs[i].
func commitErrorCode(err error, errs []error, i int) int16 {
	switch {
	case errors.Is(err, broker.ErrInvalidArgument):
		return errorCodeInvalidGroup
	case err != nil:
		return errorCode(err)
	}
	return errorCode(errs[i])
}

// deref is *s, or "" for nil (optional strings of requests).
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// errorMessage is err's text for responses that carry one (nil for nil).
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
