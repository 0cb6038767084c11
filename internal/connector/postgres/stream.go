package postgres

import (
	"context"
	"fmt"
	"time"
)

// relState is a captured table as the stream last described it.
type relState struct {
	table    *table
	identity []bool // per column: part of the replica identity
}

// txnState is the transaction being read.
type txnState struct {
	xid        uint32
	commitLSN  LSN
	commitTime time.Time
	seq        int
}

// stream reads the slot from start and writes each committed transaction's
// events, acknowledging its end LSN once they are durable.
func (c *Connector) stream(ctx context.Context, rc *ReplConn, sqlc *sqlConn, start LSN, db string) error {
	if err := rc.StartReplication(ctx, c.cfg.Slot, start, []string{c.cfg.Publication}); err != nil {
		return fmt.Errorf("start replication from slot %s: %w", c.cfg.Slot, err)
	}
	st := NewStream(rc, start)
	st.StatusInterval = c.cfg.StatusInterval
	st.AdvanceWhenIdle = true
	st.OnPosition = func(flushed, serverWAL LSN) {
		c.update(func(s *Stats) {
			if flushed > s.ConfirmedLSN && flushed >= serverWAL {
				s.Behind = 0 // advanced while idle: caught up
			}
			s.ConfirmedLSN, s.ServerWAL = flushed, serverWAL
		})
	}
	c.update(func(s *Stats) {
		s.State = StateStreaming
		s.ConfirmedLSN = start
	})
	c.logger.Info("streaming changes", "slot", c.cfg.Slot, "publication", c.cfg.Publication, "from", start)

	rels := make(map[uint32]*relState)
	var txn txnState
	var pending []event
	jsonObject := c.cfg.JSON == JSONAsObject
	for {
		ch, err := st.Next(ctx)
		if err != nil {
			return fmt.Errorf("replication stream: %w", err)
		}
		c.update(func(s *Stats) { s.ServerWAL = st.ServerWAL() })
		switch m := ch.Message.(type) {
		case *BeginMessage:
			txn = txnState{xid: m.Xid, commitLSN: m.FinalLSN, commitTime: m.CommitTime}
		case *RelationMessage:
			rs, err := c.relation(ctx, sqlc, m)
			if err != nil {
				return err
			}
			rels[m.RelationID] = rs
		case *InsertMessage, *UpdateMessage, *DeleteMessage, *TruncateMessage:
			evs, err := changeEvents(rels, ch, jsonObject)
			if err != nil {
				return err
			}
			for i := range evs {
				evs[i].Snapshot = snapshotFalse
				evs[i].CommitLSN, evs[i].TxID, evs[i].HasTxID, evs[i].Time = txn.commitLSN, txn.xid, true, txn.commitTime
				evs[i].Seq = txn.seq
				txn.seq++
			}
			pending = append(pending, evs...)
			if len(pending) >= c.cfg.BatchRecords {
				if err := c.write(ctx, pending, db); err != nil {
					return err
				}
				pending = pending[:0]
			}
		case *CommitMessage:
			if err := c.write(ctx, pending, db); err != nil {
				return err
			}
			pending = pending[:0]
			if err := st.Ack(ctx, m.EndLSN); err != nil {
				return fmt.Errorf("acknowledge %s: %w", m.EndLSN, err)
			}
			c.update(func(s *Stats) {
				s.Transactions++
				s.ConfirmedLSN = st.Flushed()
				s.Behind = max(0, time.Since(m.CommitTime))
			})
		}
	}
}

// relation builds the table of a Relation message: its columns as they are
// now (a column added or dropped since is picked up here, as PostgreSQL
// sends the message again when the table's shape changed) and its key.
func (c *Connector) relation(ctx context.Context, sqlc *sqlConn, m *RelationMessage) (*relState, error) {
	pk, err := sqlc.primaryKey(ctx, m.RelationID)
	if err != nil {
		return nil, err
	}
	t := &table{ID: m.RelationID, Schema: m.Namespace, Name: m.Name, Stream: streamName(c.cfg.Prefix, m.Namespace, m.Name)}
	identity := make([]bool, len(m.Columns))
	for i, col := range m.Columns {
		t.Cols = append(t.Cols, column{Name: col.Name, OID: col.TypeOID})
		identity[i] = col.IsKey()
	}
	t.Key = keyIndexes(t.Cols, pk, identity)
	return &relState{table: t, identity: identity}, nil
}

// changeEvents turns one row change into events: an insert into a create,
// an update into an update (or, when the key changed, a delete of the old
// key with its tombstone and a create of the new), a delete into a delete
// and a tombstone, a truncate into one truncate event per table.
func changeEvents(rels map[uint32]*relState, ch Change, jsonObject bool) ([]event, error) {
	lookup := func(id uint32) (*relState, error) {
		rs, ok := rels[id]
		if !ok {
			return nil, fmt.Errorf("change at %s for relation %d, which no Relation message described", ch.WALStart, id)
		}
		return rs, nil
	}
	base := func(rs *relState, op byte) event { return event{Table: rs.table, Op: op, LSN: ch.WALStart} }
	switch m := ch.Message.(type) {
	case *InsertMessage:
		rs, err := lookup(m.RelationID)
		if err != nil {
			return nil, err
		}
		vals, err := tupleValues(rs.table, rs.identity, m.New, false)
		if err != nil {
			return nil, err
		}
		ev := base(rs, opCreate)
		ev.Row = vals
		if ev.After, ev.Key, err = rowAndKey(rs.table, vals, jsonObject); err != nil {
			return nil, err
		}
		return []event{ev}, nil
	case *UpdateMessage:
		rs, err := lookup(m.RelationID)
		if err != nil {
			return nil, err
		}
		newVals, err := tupleValues(rs.table, rs.identity, m.New, false)
		if err != nil {
			return nil, err
		}
		var before, oldKey []byte
		if m.OldKind != 0 {
			oldVals, err := tupleValues(rs.table, rs.identity, m.Old, m.OldKind == 'K')
			if err != nil {
				return nil, err
			}
			if m.OldKind == 'O' && len(oldVals) == len(newVals) {
				// An unchanged TOASTed value is not sent; the full
				// before-image (REPLICA IDENTITY FULL) has it.
				for i := range newVals {
					if newVals[i].Absent && !oldVals[i].Absent {
						newVals[i] = oldVals[i]
					}
				}
			}
			if before, oldKey, err = rowAndKey(rs.table, oldVals, jsonObject); err != nil {
				return nil, err
			}
		}
		after, newKey, err := rowAndKey(rs.table, newVals, jsonObject)
		if err != nil {
			return nil, err
		}
		if !sameKey(oldKey, newKey) {
			del := base(rs, opDelete)
			del.Before, del.Key, del.Tombstone = before, oldKey, true
			create := base(rs, opCreate)
			create.After, create.Key = after, newKey
			return []event{del, create}, nil
		}
		ev := base(rs, opUpdate)
		ev.Before, ev.After, ev.Key = before, after, newKey
		return []event{ev}, nil
	case *DeleteMessage:
		rs, err := lookup(m.RelationID)
		if err != nil {
			return nil, err
		}
		oldVals, err := tupleValues(rs.table, rs.identity, m.Old, m.OldKind == 'K')
		if err != nil {
			return nil, err
		}
		ev := base(rs, opDelete)
		ev.Tombstone = true
		if ev.Before, ev.Key, err = rowAndKey(rs.table, oldVals, jsonObject); err != nil {
			return nil, err
		}
		return []event{ev}, nil
	case *TruncateMessage:
		evs := make([]event, 0, len(m.RelationIDs))
		for _, id := range m.RelationIDs {
			rs, err := lookup(id)
			if err != nil {
				return nil, err
			}
			evs = append(evs, base(rs, opTruncate))
		}
		return evs, nil
	}
	return nil, nil
}

func rowAndKey(t *table, vals []value, jsonObject bool) (row, key []byte, err error) {
	if row, err = encodeRow(t, vals, jsonObject); err != nil {
		return nil, nil, err
	}
	key, err = encodeKey(t, vals)
	return row, key, err
}
