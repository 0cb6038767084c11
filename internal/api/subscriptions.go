package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// subscriptions is the registry of live subscriptions by id, which
// AddCredits, AckRevocation and the settling RPCs (Ack, Nack, Reject,
// Extend) address them by.
type subscriptions struct {
	mu      sync.Mutex
	byID    map[string]*subscription
	closed  bool
	running sync.WaitGroup
}

func (r *subscriptions) init() {
	r.byID = make(map[string]*subscription)
}

// add registers sub under a new random id; it fails once the service is
// closed.
func (r *subscriptions) add(sub *subscription) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errShuttingDown
	}
	for {
		var id [16]byte
		rand.Read(id[:])
		sub.id = hex.EncodeToString(id[:])
		if r.byID[sub.id] == nil {
			break
		}
	}
	r.byID[sub.id] = sub
	r.running.Add(1)
	return nil
}

func (r *subscriptions) remove(sub *subscription) {
	r.mu.Lock()
	delete(r.byID, sub.id)
	r.mu.Unlock()
	r.running.Done()
}

func (r *subscriptions) get(id string) (*subscription, error) {
	if id == "" {
		return nil, invalidArgument("subscription_id is required")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sub := r.byID[id]
	if sub == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no live subscription %q on this server; it ended or never existed", id))
	}
	return sub, nil
}

func (r *subscriptions) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

func (r *subscriptions) wait() { r.running.Wait() }

// AddCredits returns credits to a subscription: it may send that many more
// records.
func (s *Service) AddCredits(ctx context.Context, req *connect.Request[weirpb.AddCreditsRequest]) (*connect.Response[weirpb.AddCreditsResponse], error) {
	if req.Msg.GetCredits() <= 0 {
		return nil, invalidArgument("credits must be positive, got %d", req.Msg.GetCredits())
	}
	sub, err := s.subs.get(req.Msg.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	if sub.shared != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"subscription %q is in shared mode: settling records (Ack, Nack, Reject) returns its credits", sub.id))
	}
	sub.credits.add(int64(req.Msg.GetCredits()))
	sub.wake.notify()
	return connect.NewResponse(&weirpb.AddCreditsResponse{}), nil
}

// AckRevocation tells a group subscription that its client has committed
// what it processed of the partitions revoked up to a generation, so they
// can move to their new owner.
func (s *Service) AckRevocation(ctx context.Context, req *connect.Request[weirpb.AckRevocationRequest]) (*connect.Response[weirpb.AckRevocationResponse], error) {
	sub, err := s.subs.get(req.Msg.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	if sub.member == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("subscription %q is not a group subscription; only those have revocations", sub.id))
	}
	if err := sub.member.acknowledge(req.Msg.GetGeneration()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&weirpb.AckRevocationResponse{}), nil
}
