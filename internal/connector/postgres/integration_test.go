package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// txn is one decoded transaction.
type txn struct {
	begin   *BeginMessage
	commit  *CommitMessage
	changes []Message
}

// readTxns reads n complete transactions from the stream, recording relation
// messages in rels.
func readTxns(ctx context.Context, t *testing.T, st *Stream, n int, rels map[uint32]*RelationMessage) []txn {
	t.Helper()
	var out []txn
	var cur *txn
	for len(out) < n {
		ch, err := st.Next(ctx)
		if err != nil {
			t.Fatalf("after %d transactions: %v", len(out), err)
		}
		switch m := ch.Message.(type) {
		case *BeginMessage:
			if cur != nil {
				t.Fatalf("Begin inside a transaction")
			}
			cur = &txn{begin: m}
		case *CommitMessage:
			if cur == nil {
				t.Fatalf("Commit outside a transaction")
			}
			cur.commit = m
			out = append(out, *cur)
			cur = nil
		case *RelationMessage:
			rels[m.RelationID] = m
		default:
			if cur == nil {
				t.Fatalf("%T outside a transaction", m)
			}
			cur.changes = append(cur.changes, m)
		}
	}
	return out
}

func tupleText(t Tuple) []string {
	out := make([]string, len(t))
	for i, c := range t {
		switch c.Kind {
		case ColumnNull:
			out[i] = "<null>"
		case ColumnUnchanged:
			out[i] = "<unchanged>"
		default:
			out[i] = string(c.Data)
		}
	}
	return out
}

func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func startStream(ctx context.Context, t *testing.T, s *testServer, slot string) (*ReplConn, *Stream) {
	t.Helper()
	rc, err := Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.StartReplication(ctx, slot, 0, []string{"weir_pub"}); err != nil {
		rc.Close(ctx)
		t.Fatal(err)
	}
	st := NewStream(rc, 0)
	st.StatusInterval = time.Second
	return rc, st
}

func TestLogicalReplicationEndToEnd(t *testing.T) {
	s := startPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	s.Exec(t, `CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, note text);
		ALTER TABLE public.items REPLICA IDENTITY FULL;
		CREATE TABLE public.keyed (id int PRIMARY KEY, v text);
		CREATE PUBLICATION weir_pub FOR TABLE public.items, public.keyed`)

	rc, err := Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	sys, err := rc.IdentifySystem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sys.DBName != "postgres" || sys.Timeline != 1 || sys.SystemID == "" || sys.XLogPos == 0 {
		t.Fatalf("IDENTIFY_SYSTEM = %+v", sys)
	}
	slot, err := rc.CreateReplicationSlot(ctx, "weir_slot", SlotOptions{Snapshot: SnapshotExport})
	if err != nil {
		t.Fatal(err)
	}
	if slot.Name != "weir_slot" || slot.OutputPlugin != "pgoutput" || slot.SnapshotName == "" || slot.ConsistentPoint < sys.XLogPos {
		t.Fatalf("slot = %+v (system %+v)", slot, sys)
	}
	// The exported snapshot is usable while the replication connection is idle.
	snapRes := s.Exec(t, fmt.Sprintf(`BEGIN ISOLATION LEVEL REPEATABLE READ;
		SET TRANSACTION SNAPSHOT '%s'; SELECT count(*) FROM public.items; COMMIT`, slot.SnapshotName))
	if got := string(snapRes[2].Rows[0][0]); got != "0" {
		t.Fatalf("rows in snapshot = %s", got)
	}
	if err := rc.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s.Exec(t, `INSERT INTO public.items VALUES (1, 'one', NULL), (2, 'two', 'n2')`)
	s.Exec(t, `UPDATE public.items SET name = 'uno' WHERE id = 1`)
	s.Exec(t, `DELETE FROM public.items WHERE id = 2`)
	s.Exec(t, `INSERT INTO public.keyed VALUES (10, 'a'); UPDATE public.keyed SET id = 11 WHERE id = 10`)
	s.Exec(t, `TRUNCATE public.keyed`)

	rc, st := startStream(ctx, t, s, "weir_slot")
	rels := map[uint32]*RelationMessage{}
	txns := readTxns(ctx, t, st, 5, rels)

	var items, keyed *RelationMessage
	for _, r := range rels {
		switch r.Name {
		case "items":
			items = r
		case "keyed":
			keyed = r
		}
	}
	if items == nil || keyed == nil {
		t.Fatalf("relations = %v", rels)
	}
	if items.Namespace != "public" || items.ReplicaIdentity != 'f' || len(items.Columns) != 3 ||
		items.Columns[0].Name != "id" || items.Columns[0].TypeOID != 23 || !items.Columns[0].IsKey() ||
		items.Columns[1].Name != "name" || items.Columns[1].TypeOID != 25 || items.Columns[2].Name != "note" {
		t.Fatalf("items relation = %+v", items)
	}
	if keyed.ReplicaIdentity != 'd' || !keyed.Columns[0].IsKey() || keyed.Columns[1].IsKey() {
		t.Fatalf("keyed relation = %+v", keyed)
	}

	var prevEnd LSN
	for i, tx := range txns {
		if tx.begin.FinalLSN != tx.commit.CommitLSN {
			t.Errorf("txn %d: begin final LSN %v != commit LSN %v", i, tx.begin.FinalLSN, tx.commit.CommitLSN)
		}
		if tx.commit.EndLSN <= tx.commit.CommitLSN || tx.commit.CommitLSN <= prevEnd || tx.commit.CommitLSN < slot.ConsistentPoint {
			t.Errorf("txn %d: commit %v end %v after previous end %v", i, tx.commit.CommitLSN, tx.commit.EndLSN, prevEnd)
		}
		if tx.begin.Xid == 0 || time.Since(tx.commit.CommitTime) > time.Minute || tx.commit.CommitTime.After(time.Now().Add(time.Minute)) {
			t.Errorf("txn %d: xid %d commit time %v", i, tx.begin.Xid, tx.commit.CommitTime)
		}
		prevEnd = tx.commit.EndLSN
	}

	// 1: the insert of two rows.
	if c := txns[0].changes; len(c) != 2 {
		t.Fatalf("txn 0 changes = %#v", c)
	} else {
		i0, ok0 := c[0].(*InsertMessage)
		i1, ok1 := c[1].(*InsertMessage)
		if !ok0 || !ok1 || i0.RelationID != items.RelationID ||
			!eq(tupleText(i0.New), []string{"1", "one", "<null>"}) || !eq(tupleText(i1.New), []string{"2", "two", "n2"}) {
			t.Fatalf("txn 0 changes = %#v %#v", c[0], c[1])
		}
	}
	// 2: update with the full old row (REPLICA IDENTITY FULL).
	if u, ok := txns[1].changes[0].(*UpdateMessage); !ok || len(txns[1].changes) != 1 || u.OldKind != 'O' ||
		!eq(tupleText(u.Old), []string{"1", "one", "<null>"}) || !eq(tupleText(u.New), []string{"1", "uno", "<null>"}) {
		t.Fatalf("txn 1 changes = %#v", txns[1].changes)
	}
	// 3: delete with the full old row.
	if d, ok := txns[2].changes[0].(*DeleteMessage); !ok || len(txns[2].changes) != 1 || d.OldKind != 'O' ||
		!eq(tupleText(d.Old), []string{"2", "two", "n2"}) {
		t.Fatalf("txn 2 changes = %#v", txns[2].changes)
	}
	// 4: insert then a key change: old key only ('K').
	if c := txns[3].changes; len(c) != 2 {
		t.Fatalf("txn 3 changes = %#v", c)
	} else if i, ok := c[0].(*InsertMessage); !ok || i.RelationID != keyed.RelationID || !eq(tupleText(i.New), []string{"10", "a"}) {
		t.Fatalf("txn 3 insert = %#v", c[0])
	} else if u, ok := c[1].(*UpdateMessage); !ok || u.OldKind != 'K' ||
		!eq(tupleText(u.Old), []string{"10", "<null>"}) || !eq(tupleText(u.New), []string{"11", "a"}) {
		t.Fatalf("txn 3 update = %#v", c[1])
	}
	// 5: truncate.
	if tr, ok := txns[4].changes[0].(*TruncateMessage); !ok || len(tr.RelationIDs) != 1 || tr.RelationIDs[0] != keyed.RelationID {
		t.Fatalf("txn 4 changes = %#v", txns[4].changes)
	}

	// Acknowledge the first three transactions only, then reconnect: the
	// last two must be delivered again, the first three must not.
	ackLSN := txns[2].commit.EndLSN
	if err := st.Ack(ctx, ackLSN); err != nil {
		t.Fatal(err)
	}
	waitConfirmed(ctx, t, s, "weir_slot", ackLSN)
	rc.Close(ctx)

	s.Exec(t, `INSERT INTO public.items VALUES (3, 'three', NULL)`)

	rc, st = startStream(ctx, t, s, "weir_slot")
	again := readTxns(ctx, t, st, 3, map[uint32]*RelationMessage{})
	for i, want := range []LSN{txns[3].commit.CommitLSN, txns[4].commit.CommitLSN} {
		if again[i].commit.CommitLSN != want {
			t.Fatalf("after reconnect txn %d commit %v, want %v (acked %v)", i, again[i].commit.CommitLSN, want, ackLSN)
		}
	}
	if ins, ok := again[2].changes[0].(*InsertMessage); !ok || !eq(tupleText(ins.New), []string{"3", "three", "<null>"}) {
		t.Fatalf("after reconnect new txn = %#v", again[2].changes)
	}

	// Acknowledge everything; a reconnect then delivers only new work.
	last := again[2].commit.EndLSN
	if err := st.Ack(ctx, last); err != nil {
		t.Fatal(err)
	}
	waitConfirmed(ctx, t, s, "weir_slot", last)
	rc.Close(ctx)
	s.Exec(t, `DELETE FROM public.items WHERE id = 3`)
	rc, st = startStream(ctx, t, s, "weir_slot")
	final := readTxns(ctx, t, st, 1, map[uint32]*RelationMessage{})
	if d, ok := final[0].changes[0].(*DeleteMessage); !ok || final[0].commit.CommitLSN <= last ||
		!eq(tupleText(d.Old), []string{"3", "three", "<null>"}) {
		t.Fatalf("after full ack, first txn = %#v commit %v (acked %v)", final[0].changes, final[0].commit.CommitLSN, last)
	}
	rc.Close(ctx)

	rc, err = Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	if err := rc.DropReplicationSlot(ctx, "weir_slot"); err != nil {
		t.Fatal(err)
	}
}

// waitConfirmed waits until the slot's confirmed_flush_lsn reaches lsn.
func waitConfirmed(ctx context.Context, t *testing.T, s *testServer, slot string, lsn LSN) {
	t.Helper()
	for {
		res := s.Exec(t, fmt.Sprintf("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'", slot))
		if len(res[0].Rows) == 1 && res[0].Rows[0][0] != nil {
			got, err := ParseLSN(string(res[0].Rows[0][0]))
			if err != nil {
				t.Fatal(err)
			}
			if got >= lsn {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("slot %s confirmed_flush_lsn never reached %v", slot, lsn)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestKeepaliveAnswered checks that an idle stream answers the server's
// keepalives: with a short wal_sender_timeout the server would end the
// connection if no status update arrived.
func TestKeepaliveAnswered(t *testing.T) {
	s := startPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s.Exec(t, `ALTER SYSTEM SET wal_sender_timeout = '1s'`)
	s.Exec(t, `SELECT pg_reload_conf()`)
	if res := s.Exec(t, `SHOW wal_sender_timeout`); string(res[0].Rows[0][0]) != "1s" {
		t.Fatalf("wal_sender_timeout = %s", res[0].Rows[0][0])
	}
	s.Exec(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION weir_pub FOR TABLE t`)
	rc, err := Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.CreateReplicationSlot(ctx, "idle", SlotOptions{Snapshot: SnapshotNothing}); err != nil {
		t.Fatal(err)
	}
	rc.Close(ctx)
	rc, st := startStream(ctx, t, s, "idle")
	defer rc.Close(ctx)
	st.StatusInterval = time.Hour // only keepalive replies keep the connection alive

	// Write after 3 s (three sender timeouts); the change must arrive on the
	// same connection.
	go func() {
		time.Sleep(3 * time.Second)
		conn, err := pgconn.Connect(ctx, s.ConnString())
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "INSERT INTO t VALUES (1)").ReadAll()
	}()
	for {
		ch, err := st.Next(ctx)
		if err != nil {
			var pgErr *pgconn.PgError
			errors.As(err, &pgErr)
			t.Fatalf("stream ended while idle: %v (%+v)", err, pgErr)
		}
		if ins, ok := ch.Message.(*InsertMessage); ok {
			if !eq(tupleText(ins.New), []string{"1"}) {
				t.Fatalf("insert = %#v", ins)
			}
			return
		}
	}
}

// TestPeriodicStatusUpdate checks that an idle stream sends status updates
// on its own every StatusInterval (the server's keepalives come only every
// wal_sender_timeout/2 = 30 s here), by watching reply_time advance.
func TestPeriodicStatusUpdate(t *testing.T) {
	s := startPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s.Exec(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION weir_pub FOR TABLE t`)
	rc, err := Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.CreateReplicationSlot(ctx, "periodic", SlotOptions{Snapshot: SnapshotNothing}); err != nil {
		t.Fatal(err)
	}
	rc.Close(ctx)
	rc, st := startStream(ctx, t, s, "periodic")
	defer rc.Close(ctx)
	st.StatusInterval = 200 * time.Millisecond

	errc := make(chan error, 1)
	nctx, ncancel := context.WithCancel(ctx)
	go func() {
		_, err := st.Next(nctx) // idle: returns only on error or cancel
		errc <- err
	}()
	replyTime := func() string {
		res := s.Exec(t, `SELECT coalesce(reply_time::text, '') FROM pg_stat_replication`)
		if len(res[0].Rows) != 1 {
			return ""
		}
		return string(res[0].Rows[0][0])
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) < 4 && time.Now().Before(deadline) {
		if r := replyTime(); r != "" {
			seen[r] = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	ncancel()
	if err := <-errc; err == nil {
		t.Fatal("Next returned without a message or error")
	}
	if len(seen) < 4 {
		t.Fatalf("reply_time took %d distinct values in 5 s, want >= 4 (periodic status updates)", len(seen))
	}
}
