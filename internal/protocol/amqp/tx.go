package amqp

import (
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// Transactions (tx.select, tx.commit, tx.rollback) as RabbitMQ has them:
// once a channel is transactional, its publishes and its acks, nacks and
// rejects are held until tx.commit, which stores the publishes (in order,
// returns of unroutable mandatory ones first) and then settles the
// deliveries, and answers commit-ok once both are done (durable under the
// fsync policy); tx.rollback drops the held publishes and makes the held
// deliveries unacknowledged again (not requeued: the client may settle them
// again). A transaction is not atomic across queues, nor across a crash
// during commit (as RabbitMQ's is not). A channel is transactional or in
// confirm mode, not both (406). Closing a channel drops an open
// transaction: its deliveries are requeued with the channel's others.

// txState is what an open transaction holds.
type txState struct {
	publishes []*pubJob
	settles   []txSettle
}

// txSettle is an ack, nack or reject held by a transaction: the
// deliveries were taken from the channel's unacknowledged ones and still
// count against the prefetch.
type txSettle struct {
	taken []*unacked
	how   settleHow
}

func (ch *channel) txMode() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.tx != nil
}

func (ch *channel) txSelect(m *wire.TxSelect) *amqpError {
	if ch.confirm {
		return exception(wire.PreconditionFailed, m, "cannot switch from confirm to tx mode")
	}
	ch.mu.Lock()
	if ch.tx == nil {
		ch.tx = &txState{}
	}
	ch.mu.Unlock()
	return ch.reply(&wire.TxSelectOk{})
}

// txHold keeps a publish for the commit when the channel is
// transactional (reader goroutine).
func (ch *channel) txHold(j *pubJob) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.tx == nil {
		return false
	}
	ch.tx.publishes = append(ch.tx.publishes, j)
	return true
}

// takeTx ends the open transaction and starts the next one.
func (ch *channel) takeTx(m wire.Method) (*txState, *amqpError) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.tx == nil {
		return nil, exception(wire.PreconditionFailed, m, "channel is not transactional")
	}
	tx := ch.tx
	ch.tx = &txState{}
	return tx, nil
}

// syncPublishes waits until the channel's publisher has handled every
// message published before (reader goroutine): methods that read a queue
// (basic.get, declare's counts, purge, delete) then see them, as a channel's
// methods are ordered in AMQP. It returns false if the connection ended.
func (ch *channel) syncPublishes() bool {
	if !ch.unsynced {
		return true
	}
	barrier := &pubJob{barrier: make(chan struct{})}
	ch.pub.enqueue(barrier)
	select {
	case <-barrier.barrier:
		ch.unsynced = false
		return true
	case <-ch.c.ctx.Done():
		return false
	}
}

func (ch *channel) txCommit(m *wire.TxCommit) *amqpError {
	tx, e := ch.takeTx(m)
	if e != nil {
		return e
	}
	for _, j := range tx.publishes {
		ch.pub.enqueue(j)
		ch.unsynced = true
	}
	// The publisher handles jobs in order: once the barrier is reached
	// every publish of the transaction is stored (or failed the channel)
	// and its returns are sent.
	if !ch.syncPublishes() {
		return nil
	}
	for _, st := range tx.settles {
		ch.applySettle(st.taken, st.how)
	}
	ch.settles.Wait()
	if ch.isClosed() {
		return nil // a publish failed the channel
	}
	return ch.reply(&wire.TxCommitOk{})
}

func (ch *channel) txRollback(m *wire.TxRollback) *amqpError {
	tx, e := ch.takeTx(m)
	if e != nil {
		return e
	}
	ch.mu.Lock()
	for _, st := range tx.settles {
		for _, u := range st.taken {
			ch.unacked[u.tag] = u
		}
	}
	ch.mu.Unlock()
	return ch.reply(&wire.TxRollbackOk{})
}
