package postgres

import (
	"testing"

	"github.com/weirmq/weir/internal/connector/postgres/pgtest"
)

// testServer is a PostgreSQL server started for one test (pgtest).
type testServer = pgtest.Server

func startPostgres(t testing.TB) *testServer { return pgtest.Start(t) }

func TestHarnessStartsPostgres(t *testing.T) {
	s := startPostgres(t)
	res := s.Exec(t, "SHOW wal_level")
	if got := string(res[0].Rows[0][0]); got != "logical" {
		t.Fatalf("wal_level = %q, want logical", got)
	}
}
