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
	{broker.ErrCorruptBatch, kerr.CorruptMessage},
	{broker.ErrInvalidBatch, kerr.InvalidRecord},
	{broker.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{broker.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{broker.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{broker.ErrUnsupportedTransaction, kerr.InvalidTxnState},
	{broker.ErrQueueFull, kerr.PolicyViolation},
	{broker.ErrNotInFlight, kerr.InvalidRecordState},
	{broker.ErrUnknownMember, kerr.UnknownMemberID},
	{broker.ErrStaleGeneration, kerr.IllegalGeneration},
	{broker.ErrRebalanceInProgress, kerr.RebalanceInProgress},
	{broker.ErrMemberIDRequired, kerr.MemberIDRequired},
	{broker.ErrInconsistentGroup, kerr.InconsistentGroupProtocol},
	{broker.ErrInvalidSessionTimeout, kerr.InvalidSessionTimeout},
	{broker.ErrGroupBusy, kerr.InconsistentGroupProtocol},
	{broker.ErrGroupNotFound, kerr.GroupIDNotFound},
	{broker.ErrInvalidArgument, kerr.InvalidRequest},
	{broker.ErrClosed, kerr.BrokerNotAvailable},
	{context.Canceled, kerr.RequestTimedOut},
	{context.DeadlineExceeded, kerr.RequestTimedOut},
}

// errorCodeInvalidGroup answers a bad group name.
var errorCodeInvalidGroup = kerr.InvalidGroupID.Code

// errorCode is the Kafka error code for err (0 for nil).
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

// errorMessage is err's text for responses that carry one (nil for nil).
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
