package torture

import (
	"context"
	"fmt"

	weir "github.com/weirmq/weir/client"
)

// storedRecord is a record read back from a partition.
type storedRecord struct {
	id     recordID
	ok     bool // the value parsed
	offset int64
	value  []byte // kept only when it did not parse
}

// readStream reads every retained record of every partition of stream.
func readStream(ctx context.Context, c *weir.Client, stream string) ([][]storedRecord, error) {
	info, err := c.DescribeStream(ctx, stream)
	if err != nil {
		return nil, err
	}
	out := make([][]storedRecord, len(info.Partitions))
	for _, p := range info.Partitions {
		var recs []storedRecord
		for off := p.StartOffset; off < p.EndOffset; {
			res, err := c.Fetch(ctx, stream, p.Partition, off, 1<<20, 0)
			if err != nil {
				return nil, fmt.Errorf("read %s/%d at %d: %w", stream, p.Partition, off, err)
			}
			for _, r := range res.Records {
				id, ok := parseValue(r.Value)
				sr := storedRecord{id: id, ok: ok, offset: r.Offset}
				if !ok {
					sr.value = r.Value
				}
				recs = append(recs, sr)
			}
			if res.NextOffset <= off {
				return nil, fmt.Errorf("read %s/%d at %d: no progress (next %d, end %d)", stream, p.Partition, off, res.NextOffset, p.EndOffset)
			}
			off = res.NextOffset
		}
		out[p.Partition] = recs
	}
	return out, nil
}

// streamCheck is the outcome of checking one client's stream.
type streamCheck struct {
	Present int // distinct records of the client found
	Acked   int // of which acknowledged
	InDoubt int // sent, not acknowledged, found
	Absent  int // sent, not acknowledged, not found
	Checked int // acknowledged records verified present (or gone with a confirmed queue ack)
}

// checkStream verifies, after a restart, what the partitions of a stream
// hold against what client was told: every acknowledged record present
// (unless allowGone says it may have been removed, as a queue's records
// once acked), none twice, none unknown, and each partition in send order.
func (l *ledger) checkStream(cycle int, client Client, stream string, parts [][]storedRecord, allowGone func(recordID) bool) streamCheck {
	sent := l.snapshot(client)
	seen := make(map[recordID]int)
	var res streamCheck
	for p, recs := range parts {
		var last recordID
		haveLast := false
		for _, r := range recs {
			known := false
			if r.ok {
				_, known = sent[r.id]
			}
			if !known || r.id.client != client {
				l.violate(Violation{Cycle: cycle, Kind: ViolationPhantom, Client: client,
					Detail: fmt.Sprintf("%s/%d@%d holds a record no %s producer sent: %.60q", stream, p, r.offset, client, r.value)})
				continue
			}
			seen[r.id]++
			if seen[r.id] == 2 {
				l.violate(Violation{Cycle: cycle, Kind: ViolationDuplicate, Client: client, Record: r.id.String(),
					Detail: fmt.Sprintf("stored twice in %s/%d (again at offset %d)", stream, p, r.offset)})
			}
			if haveLast && r.id.less(last) {
				l.violate(Violation{Cycle: cycle, Kind: ViolationOrder, Client: client, Record: r.id.String(),
					Detail: fmt.Sprintf("%s/%d@%d comes after %s", stream, p, r.offset, last)})
			}
			last, haveLast = r.id, true
		}
	}
	for id, acked := range sent {
		_, found := seen[id]
		switch {
		case found:
			res.Present++
			if acked {
				res.Acked++
				res.Checked++
			} else {
				res.InDoubt++
			}
		case acked && (allowGone == nil || !allowGone(id)):
			l.violate(Violation{Cycle: cycle, Kind: ViolationLost, Client: client, Record: id.String(),
				Detail: fmt.Sprintf("acknowledged, missing from %s after the restart", stream)})
		case acked:
			res.Checked++ // gone with its queue ack, which was confirmed
		default:
			res.Absent++
		}
	}
	return res
}
