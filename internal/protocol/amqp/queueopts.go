package amqp

import (
	"time"
)

// queueOpts are the queue arguments the front end itself enforces:
//
//   - x-expires: a queue without consumers that nobody declared, consumed
//     from or got from for that long is deleted (RabbitMQ's queue TTL);
//   - x-single-active-consumer: of the queue's consumers only the first
//     receives; when it goes, the next in arrival order takes over.
//
// Both are set by queue.declare and kept in memory; those of durable
// queues are also stored (queuestore.go), so they hold from the start
// after a restart. docs/PROTOCOLS.md has the reasons.
type queueOpts struct {
	expires      time.Duration
	singleActive bool
}

// declareOpts records the options of a declared queue, or, for a queue
// whose options are known, names the argument that differs (406).
func (s *Server) declareOpts(name string, opts queueOpts, created bool) string {
	arg, persist := s.recordOpts(name, opts, created)
	if persist {
		s.persistOpts(name, opts)
	}
	return arg
}

// recordOpts is declareOpts under s.mu; it reports whether the options
// are to be stored (new for this queue).
func (s *Server) recordOpts(name string, opts queueOpts, created bool) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q != nil && q.opts != (queueOpts{}) && !created {
		switch {
		case q.opts.expires != opts.expires:
			return "x-expires", false
		case q.opts.singleActive != opts.singleActive:
			return "x-single-active-consumer", false
		}
	}
	if q == nil {
		if opts == (queueOpts{}) {
			return "", false
		}
		q = &queueState{}
		s.queues[name] = q
	}
	persist := false
	if created || q.opts == (queueOpts{}) {
		// Options of a queue that existed before Weir kept them (or
		// created by another protocol) are taken from its first
		// declaration.
		q.opts = opts
		persist = opts != (queueOpts{}) && !q.persisted
		q.persisted = q.persisted || persist
	}
	s.used(name, q)
	return "", persist
}

// touch notes a use of a queue (passive declare, basic.get).
func (s *Server) touch(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[name]; q != nil {
		s.used(name, q)
	}
}

// used restarts an x-expires queue's lease, or stops it while the queue
// has consumers; s.mu is held.
func (s *Server) used(name string, q *queueState) {
	if q.opts.expires <= 0 {
		return
	}
	q.lastUsed = time.Now()
	if q.expiry != nil {
		q.expiry.Stop()
		q.expiry = nil
	}
	if q.consumers > 0 {
		return
	}
	q.expiry = time.AfterFunc(q.opts.expires, func() { s.expire(name, q) })
}

// expire deletes an x-expires queue whose lease ran out.
func (s *Server) expire(name string, q *queueState) {
	s.mu.Lock()
	if s.closed || s.queues[name] != q || q.consumers > 0 || time.Since(q.lastUsed) < q.opts.expires {
		s.mu.Unlock()
		return // closing, forgotten, in use, or used again since
	}
	id := q.streamID
	s.mu.Unlock()
	if info, err := s.b.DescribeStream(name); err == nil && id != ([16]byte{}) && info.ID != id {
		s.forgetQueue(name) // deleted and created again by another protocol
		return
	}
	s.deleteQueue(name, "x-expires: unused for "+q.opts.expires.String())
}

// declaredFlags are a queue's durable and auto-delete flags as declared in
// this run of the server, checked on redeclaration as RabbitMQ does (406).
// A queue declared before a restart is checked from its first declaration
// since.
type declaredFlags struct {
	durable, autoDelete bool
}

// checkFlags records the flags of a queue created now or first declared
// since the start, or names the one a redeclaration differs in.
func (s *Server) checkFlags(name string, f declaredFlags, created bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q != nil && q.flags != nil && !created {
		switch {
		case q.flags.durable != f.durable:
			return "durable"
		case q.flags.autoDelete != f.autoDelete:
			return "auto_delete"
		}
		return ""
	}
	if q == nil {
		q = &queueState{}
		s.queues[name] = q
	}
	q.flags = &f
	return ""
}

// checkExchangeFlags does for exchanges what checkFlags does for queues.
func (s *Server) checkExchangeFlags(name string, f declaredFlags) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	have, ok := s.exchangeFlags[name]
	if !ok {
		s.exchangeFlags[name] = f
		return ""
	}
	switch {
	case have.durable != f.durable:
		return "durable"
	case have.autoDelete != f.autoDelete:
		return "auto_delete"
	}
	return ""
}

// forgetExchange drops the declared flags of a deleted exchange.
func (s *Server) forgetExchange(name string) {
	s.mu.Lock()
	delete(s.exchangeFlags, name)
	s.mu.Unlock()
}
