// Package pgtest starts a real PostgreSQL server for tests: initdb into a
// temporary directory, wal_level=logical, a free loopback port. The tests of
// the PostgreSQL connector and of the server's connectors use it.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Server is a PostgreSQL server started for one test: initdb into a
// temporary directory, wal_level=logical, listening on a free loopback port.
type Server struct {
	dir     string // data directory
	sockDir string
	port    int
	bin     string
	runAs   string // system user the server runs as when the test runs as root
}

// ConnString returns a connection string for the database "postgres".
func (s *Server) ConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", s.port)
}

// findPGBin locates the PostgreSQL server binaries: $WEIR_PG_BIN, else the
// newest /usr/lib/postgresql/*/bin, else pg_ctl on PATH.
func findPGBin() (string, error) {
	if d := os.Getenv("WEIR_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL binaries found (/usr/lib/postgresql/*/bin, PATH; or set WEIR_PG_BIN)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command builds a command running a PostgreSQL binary, as the postgres
// system user when the test runs as root (the server refuses to run as root).
func (s *Server) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.runAs != "" {
		return exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *Server) run(name string, args ...string) error {
	cmd := s.command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// Start starts a server and registers its shutdown; the test fails (never
// skips) when the server cannot be started.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findPGBin()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{bin: bin}
	root, err := os.MkdirTemp("", "weir-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if os.Geteuid() == 0 {
		s.runAs = "postgres"
		u, err := user.Lookup(s.runAs)
		if err != nil {
			t.Fatalf("running as root and no %q system user to run PostgreSQL as: %v", s.runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s.dir = filepath.Join(root, "data")
	s.sockDir = root
	logFile := filepath.Join(root, "postgres.log")

	if err := s.run("initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.port = port
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c wal_level=logical"+
			" -c max_replication_slots=10 -c max_wal_senders=10 -c fsync=off -c synchronous_commit=off"+
			" -c full_page_writes=off", port, s.sockDir)
		lastErr = s.run("pg_ctl", "-D", s.dir, "-l", logFile, "-o", opts, "-w", "-t", "60", "start")
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("starting PostgreSQL: %v\nserver log:\n%s", lastErr, log)
	}
	t.Cleanup(func() {
		if err := s.run("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
	})
	return s
}

// Exec runs SQL statements on an ordinary connection.
func (s *Server) Exec(t testing.TB, sql string) []*pgconn.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}
