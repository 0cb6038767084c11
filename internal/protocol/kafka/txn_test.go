package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirmq/weir/internal/server"
)

// readAll consumes topic from the start with the isolation level until
// want records arrived, then a little longer (to catch records that must
// not come), and returns the values.
func readAll(t *testing.T, w *weir, topic string, committed bool, want int) []string {
	t.Helper()
	level := kgo.ReadUncommitted()
	if committed {
		level = kgo.ReadCommitted()
	}
	cl := w.client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []string
	var extra time.Time
	for {
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		if len(got) >= want && extra.IsZero() {
			extra = time.Now().Add(500 * time.Millisecond)
		}
		if !extra.IsZero() && time.Now().After(extra) || ctx.Err() != nil {
			return got
		}
	}
}

func produceTxn(t *testing.T, cl *kgo.Client, topic, prefix string, n int, commit kgo.TransactionEndTry) {
	t.Helper()
	ctx := testContext(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		t.Fatalf("EndTransaction(%v): %v", commit, err)
	}
}

func countPrefixes(values []string) map[string]int {
	out := make(map[string]int)
	for _, v := range values {
		out[v[:strings.IndexByte(v, '-')]]++
	}
	return out
}

// TestTransactions: a franz-go transactional producer commits one
// transaction and aborts another around plain records; a read-committed
// consumer sees the committed and plain records only, a read-uncommitted
// one everything. An open transaction holds read-committed consumers back
// at its first offset (the last stable offset) until it commits, across a
// restart of the server, which keeps the transaction and the aborted one.
func TestTransactions(t *testing.T) {
	dir := t.TempDir()
	w := startWeirIn(t, dir)
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 2, 1, nil, "tx"); err != nil {
		t.Fatal(err)
	}
	plain := w.client(t)
	txn := w.client(t, kgo.TransactionalID("tx-producer"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	produceTxn(t, txn, "tx", "c", 10, kgo.TryCommit)
	produceValuesPrefixed(t, plain, "tx", "p", 5)
	produceTxn(t, txn, "tx", "a", 10, kgo.TryAbort)
	produceValuesPrefixed(t, plain, "tx", "q", 5)

	if got := countPrefixes(readAll(t, w, "tx", true, 20)); got["c"] != 10 || got["p"] != 5 || got["q"] != 5 || got["a"] != 0 {
		t.Errorf("read committed: %v, want 10 c, 5 p, 5 q and no a", got)
	}
	if got := countPrefixes(readAll(t, w, "tx", false, 30)); got["a"] != 10 || got["c"] != 10 {
		t.Errorf("read uncommitted: %v", got)
	}

	// An open transaction: its records and those after them wait.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "tx", Partition: 0, Value: []byte("o-0")}, &kgo.Record{Topic: "tx", Value: []byte("o-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceValuesPrefixed(t, plain, "tx", "r", 4)
	b := w.srv.Broker()
	open := 0
	for p := range int32(2) {
		lso, _ := b.LastStableOffset("tx", p)
		info, _ := b.DescribeStream("tx")
		if lso < info.Partitions[p].EndOffset {
			open++
		}
	}
	if open == 0 {
		t.Errorf("no partition's last stable offset is held back by the open transaction")
	}
	if got := countPrefixes(readAll(t, w, "tx", true, 20)); got["o"] != 0 {
		t.Errorf("read committed saw the open transaction: %v", got)
	}

	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := countPrefixes(readAll(t, w, "tx", true, 26)); got["o"] != 2 || got["r"] != 4 || got["a"] != 0 {
		t.Errorf("read committed after the commit: %v", got)
	}
}

func produceValuesPrefixed(t *testing.T, cl *kgo.Client, topic, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := cl.ProduceSync(testContext(t), &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTransactionRestartCommit: a transaction open when the server
// restarts stays open (read-committed consumers wait at its first offset)
// and its producer commits it afterwards; an aborted transaction stays
// hidden after the restart.
func TestTransactionRestartCommit(t *testing.T) {
	dir := t.TempDir()
	w := startWeirIn(t, dir)
	addr := w.addr
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "txr"); err != nil {
		t.Fatal(err)
	}
	txn := w.client(t, kgo.TransactionalID("txr-producer"))
	produceTxn(t, txn, "txr", "a", 3, kgo.TryAbort)
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "txr", Value: []byte("x-0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceValuesPrefixed(t, w.client(t), "txr", "p", 2)
	w.stop(t)
	w = startWeirIn(t, dir, func(c *server.Config) { c.KafkaAddr = addr })
	if lso, _ := w.srv.Broker().LastStableOffset("txr", 0); lso != 4 {
		t.Errorf("last stable offset after the restart: %d, want 4 (the open transaction's first offset)", lso)
	}
	if got := countPrefixes(readAll(t, w, "txr", true, 0)); len(got) != 0 {
		t.Errorf("read committed while the transaction is open: %v", got)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after the restart: %v", err)
	}
	if got := countPrefixes(readAll(t, w, "txr", true, 3)); got["x"] != 1 || got["p"] != 2 || got["a"] != 0 {
		t.Errorf("read committed after the commit: %v", got)
	}
}

// TestTransactionFencing: a second instance with the same transactional id
// fences the first, whose commit then fails; a transaction open longer
// than its timeout is aborted and its producer fenced.
func TestTransactionFencing(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "txf"); err != nil {
		t.Fatal(err)
	}
	first := w.client(t, kgo.TransactionalID("txf-producer"))
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := first.ProduceSync(ctx, &kgo.Record{Topic: "txf", Value: []byte("z-0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	second := w.client(t, kgo.TransactionalID("txf-producer"))
	produceTxn(t, second, "txf", "s", 2, kgo.TryCommit) // InitProducerId fences first
	err := first.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Errorf("the fenced instance's commit: %v, want PRODUCER_FENCED", err)
	}
	if got := countPrefixes(readAll(t, w, "txf", true, 2)); got["z"] != 0 || got["s"] != 2 {
		t.Errorf("read committed: %v", got)
	}

	// A timeout aborts.
	slow := w.client(t, kgo.TransactionalID("txf-slow"), kgo.TransactionTimeout(time.Second))
	if err := slow.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := slow.ProduceSync(ctx, &kgo.Record{Topic: "txf", Value: []byte("t-0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := slow.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Errorf("a transaction that timed out committed")
	}
	if got := countPrefixes(readAll(t, w, "txf", true, 2)); got["t"] != 0 {
		t.Errorf("read committed sees the timed-out transaction: %v", got)
	}
	if lso, _ := w.srv.Broker().LastStableOffset("txf", 0); lso != mustEnd(t, w, "txf", 0) {
		t.Errorf("last stable offset %d after the abort, want the end", lso)
	}
}

func mustEnd(t *testing.T, w *weir, topic string, p int32) int64 {
	info, err := w.srv.Broker().DescribeStream(topic)
	if err != nil {
		t.Fatal(err)
	}
	return info.Partitions[p].EndOffset
}

// TestConsumeTransformProduce runs franz-go's GroupTransactSession: records
// of an input topic are read by a group, transformed and produced to an
// output topic, and the group's offsets committed in the same transaction
// (TxnOffsetCommit). The first round is aborted: its output never shows
// and its offsets are not committed, so its records are processed again.
// In the end the output holds each input record exactly once (read
// committed), and the group's committed offsets are the input's end.
func TestConsumeTransformProduce(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	adm := w.admin(t)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "ctp-in"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "ctp-out"); err != nil {
		t.Fatal(err)
	}
	const n = 60
	produceValuesPrefixed(t, w.client(t, kgo.RecordPartitioner(kgo.RoundRobinPartitioner())), "ctp-in", "in", n)
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(w.addr), kgo.TransactionalID("ctp"),
		kgo.ConsumerGroup("ctp-g"), kgo.ConsumeTopics("ctp-in"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.DefaultProduceTopic("ctp-out"), kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	processed := 0
	aborted := false
	for {
		if processed >= n || ctx.Err() != nil {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := sess.PollFetches(pctx)
		cancel()
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		// Synchronously, so the aborted round's records are written too.
		var out []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { out = append(out, &kgo.Record{Value: append([]byte("out-"), r.Value...)}) })
		if err := sess.ProduceSync(ctx, out...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		commit := kgo.TryCommit
		if !aborted {
			commit, aborted = kgo.TryAbort, true
		}
		committed, err := sess.End(ctx, commit)
		if err != nil {
			t.Fatalf("End: %v", err)
		}
		if committed {
			processed += fs.NumRecords()
		}
	}
	out := readAll(t, w, "ctp-out", true, n)
	seen := make(map[string]int)
	for _, v := range out {
		seen[v]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("out-in-%d", i)]; c != 1 {
			t.Errorf("output of in-%d appears %d times, want once", i, c)
		}
	}
	if len(out) != n {
		t.Errorf("%d output records, want %d", len(out), n)
	}
	if all := readAll(t, w, "ctp-out", false, n+1); len(all) <= n {
		t.Errorf("read uncommitted sees %d records: the aborted round's output should be there too", len(all))
	}
	offsets, err := adm.FetchOffsets(ctx, "ctp-g")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		o, ok := offsets.Lookup("ctp-in", p)
		if end := mustEnd(t, w, "ctp-in", p); !ok || o.At != end {
			t.Errorf("ctp-in/%d committed %+v, want the end %d", p, o, end)
		}
	}
}

// TestTransactionsKcat: kcat (librdkafka, whose consumers read committed
// by default) skips an aborted franz-go transaction and sees a committed
// one; with isolation.level=read_uncommitted it sees both.
func TestTransactionsKcat(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "txk"); err != nil {
		t.Fatal(err)
	}
	txn := w.client(t, kgo.TransactionalID("txk-producer"))
	produceTxn(t, txn, "txk", "a", 3, kgo.TryAbort)
	produceTxn(t, txn, "txk", "c", 3, kgo.TryCommit)
	committed := strings.Fields(kcat(t, w, "", "-C", "-t", "txk", "-e", "-o", "beginning", "-f", "%s\n"))
	if got := countPrefixes(committed); got["a"] != 0 || got["c"] != 3 {
		t.Errorf("kcat (read committed): %v", committed)
	}
	all := strings.Fields(kcat(t, w, "", "-C", "-t", "txk", "-e", "-o", "beginning", "-X", "isolation.level=read_uncommitted", "-f", "%s\n"))
	if got := countPrefixes(all); got["a"] != 3 || got["c"] != 3 {
		t.Errorf("kcat (read uncommitted): %v", all)
	}
}
