// Package postgres is the foundation of Weir's PostgreSQL change data capture
// connector: a logical replication client over pgx's pgconn (replication
// connection, slot creation, the CopyBoth stream with keepalives and standby
// status updates) and a decoder for the pgoutput plugin's messages.
package postgres

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LSN is a PostgreSQL WAL location (log sequence number).
type LSN uint64

// String formats the LSN as PostgreSQL does: two hexadecimal halves, "X/X".
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// ParseLSN parses the "X/X" text form of an LSN.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("postgres: invalid LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("postgres: invalid LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("postgres: invalid LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// pgEpoch is the PostgreSQL epoch (2000-01-01 UTC); protocol timestamps are
// microseconds since it.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const pgEpochUnix = 946684800 // pgEpoch in Unix seconds

// pgTime converts a protocol timestamp; exact over the whole int64 range.
func pgTime(micros int64) time.Time {
	return time.Unix(pgEpochUnix+micros/1e6, (micros%1e6)*1e3).UTC()
}

// toPgTime is the inverse of pgTime.
func toPgTime(t time.Time) int64 {
	return (t.Unix()-pgEpochUnix)*1e6 + int64(t.Nanosecond()/1e3)
}
