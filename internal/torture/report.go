package torture

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is what a campaign counted.
type Report struct {
	FSync      string `json:"fsync"`
	Seed       uint64 `json:"seed"`
	Partitions int32  `json:"partitions"`
	Rate       int    `json:"rate"` // records per second per client; 0: unlimited
	KillMin    string `json:"kill_min"`
	KillMax    string `json:"kill_max"`
	Cycles     int    `json:"cycles"` // kill-restart-check cycles completed
	Kills      int    `json:"kills"`  // SIGKILLs sent, startup kills included
	// StartupKills: SIGKILLs of a restarting server during its recovery
	// (before or just as it listened).
	StartupKills int     `json:"startup_kills"`
	Checks       int     `json:"checks"` // checks after a restart (the cycles' and the final one)
	Seconds      float64 `json:"seconds"`

	Clients []ClientReport `json:"clients"`
	Queue   QueueReport    `json:"queue"`

	// Violations counts the broken promises by kind (see the Violation
	// constants); Examples lists the first ones.
	Violations map[string]int `json:"violations"`
	Examples   []Violation    `json:"examples,omitempty"`
}

// ClientReport counts the records of one producing client.
type ClientReport struct {
	Client Client `json:"client"`
	// Sent records; Acknowledged by the server (acks=all answer, publisher
	// confirm, publish result); InDoubt: sent, and the client did not learn
	// the outcome before the server died.
	Sent         int64 `json:"sent"`
	Acknowledged int64 `json:"acknowledged"`
	InDoubt      int64 `json:"in_doubt"`
	// At the last check: in-doubt records found (stored) and not found.
	InDoubtStored int `json:"in_doubt_stored"`
	InDoubtAbsent int `json:"in_doubt_absent"`
	// AckedVerifications sums, over every check, the acknowledged records
	// verified present.
	AckedVerifications int64 `json:"acked_verifications"`
}

// QueueReport counts the work of the queue's consumers.
type QueueReport struct {
	Deliveries   int64 `json:"deliveries"`
	Redeliveries int64 `json:"redeliveries"` // deliveries of a record delivered before
	// CountedRedeliveries: deliveries whose delivery count was above 1.
	CountedRedeliveries int64 `json:"counted_redeliveries"`
	AcksConfirmed       int   `json:"acks_confirmed"`
	AcksFailed          int64 `json:"acks_failed"`
	// DrainExpected: confirmed queue records whose ack was never sent when
	// the final drain began; Drained: of which it delivered and acked.
	// PublishOnlyCycles ran without consumers (the last one always).
	PublishOnlyCycles int `json:"publish_only_cycles"`
	DrainExpected     int `json:"drain_expected"`
	Drained           int `json:"drained"`
}

// OK reports whether the campaign found no violation.
func (r *Report) OK() bool { return r.ViolationCount() == 0 }

// ViolationCount is the number of violations of every kind.
func (r *Report) ViolationCount() int { return sum(r.Violations) }

// Client returns the report of client.
func (r *Report) Client(client Client) *ClientReport {
	for i := range r.Clients {
		if r.Clients[i].Client == client {
			return &r.Clients[i]
		}
	}
	r.Clients = append(r.Clients, ClientReport{Client: client})
	return &r.Clients[len(r.Clients)-1]
}

func (r *Report) noteCheck(client Client, res streamCheck) {
	cr := r.Client(client)
	cr.InDoubtStored, cr.InDoubtAbsent = res.InDoubt, res.Absent
	cr.AckedVerifications += int64(res.Checked)
}

// finish fills the counts from the ledger.
func (r *Report) finish(l *ledger, elapsed time.Duration) {
	r.Seconds = elapsed.Round(time.Millisecond).Seconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, client := range Clients {
		r.Client(client)
	}
	for id, acked := range l.sent {
		cr := r.Client(id.client)
		cr.Sent++
		if acked {
			cr.Acknowledged++
		} else {
			cr.InDoubt++
		}
	}
	r.Queue.Deliveries, r.Queue.Redeliveries, r.Queue.CountedRedeliveries = l.deliveries, l.redeliveries, l.countedRedeliveries
	r.Queue.AcksConfirmed, r.Queue.AcksFailed = len(l.ackConfirmed), l.ackFailed
	r.Violations = make(map[string]int)
	for _, kind := range []string{ViolationLost, ViolationDuplicate, ViolationOrder, ViolationPhantom, ViolationRedelivered, ViolationQueueLost} {
		r.Violations[kind] = l.violations[kind]
	}
	r.Examples = slices.Clone(l.examples)
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "weir torture: %d cycles (%d SIGKILLs), fsync %s, %d partitions, kill delay %s..%s, %d records/s per client, seed %d, %.1fs\n",
		r.Cycles, r.Kills, r.FSync, r.Partitions, r.KillMin, r.KillMax, r.Rate, r.Seed, r.Seconds)
	fmt.Fprintf(w, "SIGKILLs during startup (recovery): %d; checks after restart: %d\n\n", r.StartupKills, r.Checks)
	fmt.Fprintf(w, "%-6s %10s %13s %9s %16s %16s %20s\n", "client", "sent", "acknowledged", "in doubt", "in doubt stored", "in doubt absent", "acked verifications")
	for _, c := range r.Clients {
		fmt.Fprintf(w, "%-6s %10d %13d %9d %16d %16d %20d\n", c.Client, c.Sent, c.Acknowledged, c.InDoubt, c.InDoubtStored, c.InDoubtAbsent, c.AckedVerifications)
	}
	q := r.Queue
	fmt.Fprintf(w, "\nqueue consumers: %d deliveries (%d redeliveries, %d with a delivery count above 1), %d acks confirmed, %d acks failed or unanswered; %d cycles without consumers; final drain delivered %d of %d confirmed, unacked records\n",
		q.Deliveries, q.Redeliveries, q.CountedRedeliveries, q.AcksConfirmed, q.AcksFailed, q.PublishOnlyCycles, q.Drained, q.DrainExpected)
	fmt.Fprintln(w, "\nviolations:")
	kinds := make([]string, 0, len(r.Violations))
	for k := range r.Violations {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-32s %d\n", k, r.Violations[k])
	}
	for _, v := range r.Examples {
		fmt.Fprintf(w, "  cycle %d: %s %s %s: %s\n", v.Cycle, v.Kind, v.Client, v.Record, v.Detail)
	}
	if r.OK() {
		fmt.Fprintln(w, "\nresult: PASS (no violation)")
	} else {
		fmt.Fprintf(w, "\nresult: FAIL (%d violations)\n", r.ViolationCount())
	}
}

// ackedSummary is "kafka N, amqp N, sdk N".
func (l *ledger) ackedSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	parts := make([]string, 0, len(Clients))
	for _, c := range Clients {
		parts = append(parts, fmt.Sprintf("%s %d", c, l.acked[c]))
	}
	return strings.Join(parts, ", ")
}

func (l *ledger) violationCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sum(l.violations)
}

// sum adds up the counts of a map.
func sum(counts map[string]int) int {
	n := 0
	for _, v := range counts {
		n += v
	}
	return n
}

func (l *ledger) deliveriesOf(id recordID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delivered[id]
}
