package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/filter"
)

// Record browser limits.
const (
	defaultLimit = 50
	maxLimit     = 500
	// maxScanned bounds the records one request reads looking for matches
	// of a filter; the answer's next offset says where to go on from.
	maxScanned   = 20_000
	fetchBytes   = 1 << 20
	maxScanBytes = 64 << 20
)

// browsedRecord is a record as the browser shows it; key and value are
// base64 (JSON's []byte), null when absent.
type browsedRecord struct {
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Timestamp time.Time       `json:"timestamp"`
	Key       []byte          `json:"key"`
	Value     []byte          `json:"value"`
	Headers   []browsedHeader `json:"headers"`
}

type browsedHeader struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

type browseAnswer struct {
	Records     []browsedRecord `json:"records"`
	From        int64           `json:"from"`       // the offset reading started at
	NextOffset  int64           `json:"nextOffset"` // where the next page starts
	StartOffset int64           `json:"startOffset"`
	EndOffset   int64           `json:"endOffset"`
	Scanned     int             `json:"scanned"` // records read, matching or not
}

// browseQuery is a parsed request of the record browser.
type browseQuery struct {
	stream    string
	partition int32
	start     broker.StartPosition
	filter    *filter.Filter
	limit     int
}

// parseBrowse reads stream, partition (default 0), one of offset, time
// (RFC 3339 or milliseconds since the epoch) or from (earliest, latest;
// default earliest), filter (a CEL expression) and limit.
func parseBrowse(q url.Values) (browseQuery, error) {
	b := browseQuery{stream: q.Get("stream"), limit: defaultLimit, start: broker.StartPosition{Kind: broker.StartEarliest}}
	if b.stream == "" {
		return b, errors.New("stream is required")
	}
	if v := q.Get("partition"); v != "" {
		p, err := strconv.ParseInt(v, 10, 32)
		if err != nil || p < 0 {
			return b, fmt.Errorf("partition %q: want a partition number", v)
		}
		b.partition = int32(p)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return b, fmt.Errorf("limit %q: want 1 to %d", v, maxLimit)
		}
		b.limit = n
	}
	set := 0
	if v := q.Get("offset"); v != "" {
		set++
		off, err := strconv.ParseInt(v, 10, 64)
		if err != nil || off < 0 {
			return b, fmt.Errorf("offset %q: want a non-negative integer", v)
		}
		b.start = broker.StartPosition{Kind: broker.StartOffset, Offset: off}
	}
	if v := q.Get("time"); v != "" {
		set++
		t, err := parseTime(v)
		if err != nil {
			return b, err
		}
		b.start = broker.StartPosition{Kind: broker.StartTime, Time: t}
	}
	if v := q.Get("from"); v != "" {
		set++
		switch v {
		case "earliest":
			b.start = broker.StartPosition{Kind: broker.StartEarliest}
		case "latest":
			b.start = broker.StartPosition{Kind: broker.StartLatest}
		default:
			return b, fmt.Errorf("from %q: want earliest or latest", v)
		}
	}
	if set > 1 {
		return b, errors.New("give at most one of offset, time and from")
	}
	if expr := q.Get("filter"); expr != "" {
		f, err := filter.Compile(expr)
		if err != nil {
			return b, err
		}
		b.filter = f
	}
	return b, nil
}

func parseTime(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-23T01:30:00Z) or milliseconds since the epoch", v)
}

// serveRecords reads one page of a partition from the position asked,
// keeping the records the filter selects.
func (c *Console) serveRecords(w http.ResponseWriter, r *http.Request) {
	q, err := parseBrowse(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The caller's rules (the request's principal, see
	// docs/SECURITY.md) before anything about the stream is said.
	if err := broker.Authorize(r.Context(), auth.ResourceStream, q.stream, auth.ActionConsume); err != nil {
		c.fail(w, err)
		return
	}
	info, err := c.records.DescribeStream(q.stream)
	if err != nil {
		c.fail(w, err)
		return
	}
	if int(q.partition) >= len(info.Partitions) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("stream %q has no partition %d (it has %d)", q.stream, q.partition, len(info.Partitions)))
		return
	}
	from, err := c.records.ResolveStart(q.stream, q.partition, q.start)
	if err != nil {
		c.fail(w, err)
		return
	}
	part := info.Partitions[q.partition]
	ans := browseAnswer{Records: []browsedRecord{}, From: from, NextOffset: from, StartOffset: part.StartOffset, EndOffset: part.EndOffset}
	scannedBytes := 0
	for len(ans.Records) < q.limit && ans.Scanned < maxScanned && scannedBytes < maxScanBytes {
		res, err := c.records.Fetch(r.Context(), q.stream, q.partition, ans.NextOffset, fetchBytes, 0)
		if errors.Is(err, broker.ErrOffsetOutOfRange) && ans.NextOffset < res.StartOffset {
			ans.NextOffset = res.StartOffset // retention removed it meanwhile
			continue
		}
		if err != nil {
			c.fail(w, err)
			return
		}
		ans.StartOffset, ans.EndOffset = res.StartOffset, res.HighWater
		if len(res.Records) == 0 {
			break
		}
		for i := range res.Records {
			rec := &res.Records[i]
			ans.Scanned++
			ans.NextOffset = rec.Offset + 1
			scannedBytes += len(rec.Key) + len(rec.Value)
			if q.filter != nil && !matches(q.filter, q.stream, rec) {
				continue
			}
			ans.Records = append(ans.Records, browsed(rec))
			if len(ans.Records) == q.limit {
				break
			}
		}
		if len(ans.Records) < q.limit {
			ans.NextOffset = max(ans.NextOffset, res.NextOffset)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(ans) // the client may have gone
}

// matches evaluates the filter on a record; a record the expression fails
// on (a header it reads is missing) is not selected, as in subscriptions.
func matches(f *filter.Filter, stream string, rec *broker.Record) bool {
	in := filter.Input{Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp, Partition: rec.Partition, Offset: rec.Offset, Stream: stream}
	ok, err := f.Match(&in)
	return err == nil && ok
}

func browsed(rec *broker.Record) browsedRecord {
	b := browsedRecord{Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Key: rec.Key, Value: rec.Value, Headers: make([]browsedHeader, len(rec.Headers))}
	for i, h := range rec.Headers {
		b.Headers[i] = browsedHeader{Key: h.Key, Value: h.Value}
	}
	return b
}

// fail answers a broker error with the status that fits it.
func (c *Console) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, broker.ErrForbidden):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, broker.ErrStreamNotFound), errors.Is(err, broker.ErrPartitionNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, broker.ErrInvalidArgument), errors.Is(err, broker.ErrOffsetOutOfRange):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, broker.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		c.logger.Error("console record browser", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
