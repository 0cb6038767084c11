package weir_test

// The outbox relay against a real MariaDB (the MySQL dialect: ? placeholders,
// FOR UPDATE SKIP LOCKED), which startMariaDB runs for the test: a data
// directory made by mariadb-install-db in a temporary directory, the server
// on a free 127.0.0.1 port and a socket there, no grant checks (nothing but
// loopback reaches it), stopped at cleanup. The Debian package
// mariadb-server provides the binaries; without them the test fails, it
// never skips.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	weir "github.com/weirmq/weir/client"
)

// mariaDB is a MariaDB server started for one test.
type mariaDB struct {
	port int
}

// DSN returns the go-sql-driver/mysql data source name of a database.
func (m *mariaDB) DSN(database string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s?timeout=30s", m.port, database)
}

// findMariaDB returns the server and install-db binaries: $WEIR_MARIADB_BIN
// (a directory holding both), else PATH and /usr/sbin, /usr/bin.
func findMariaDB() (server, installDB string, err error) {
	find := func(names ...string) string {
		for _, name := range names {
			if dir := os.Getenv("WEIR_MARIADB_BIN"); dir != "" {
				if p := filepath.Join(dir, name); isExecutable(p) {
					return p
				}
				continue
			}
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
			for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
				if p := filepath.Join(dir, name); isExecutable(p) {
					return p
				}
			}
		}
		return ""
	}
	server = find("mariadbd", "mysqld")
	installDB = find("mariadb-install-db", "mysql_install_db")
	if server == "" || installDB == "" {
		return "", "", errors.New("no MariaDB server binaries (mariadbd and mariadb-install-db on PATH, /usr/sbin or $WEIR_MARIADB_BIN): install the Debian package mariadb-server (apt-get install mariadb-server)")
	}
	return server, installDB, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// startMariaDB starts a server and registers its shutdown; the test fails
// when it cannot be started.
func startMariaDB(t *testing.T) *mariaDB {
	t.Helper()
	server, installDB, err := findMariaDB()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir(): the server runs as the mysql system user when the
	// test runs as root, and must reach its directory.
	root, err := os.MkdirTemp("", "weir-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	var runAs []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("mysql")
		if err != nil {
			t.Fatalf("running as root and no mysql system user to run MariaDB as (the package mariadb-server creates it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
		runAs = []string{"--user=mysql"}
	}
	data := filepath.Join(root, "data")
	install := exec.Command(installDB, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db",
		// Passed on to the bootstrapping server: installs running at once
		// clash over the temporary tables of a shared /tmp.
		"--tmpdir=" + root}, runAs...)...)
	install.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC", "TMPDIR="+root)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(install.Args, " "), err, out)
	}
	m := &mariaDB{}
	logFile := filepath.Join(root, "mariadb.log")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if m.port, err = freeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--no-defaults", "--datadir=" + data,
			"--bind-address=127.0.0.1", fmt.Sprintf("--port=%d", m.port),
			"--socket=" + filepath.Join(root, "mariadb.sock"), "--pid-file=" + filepath.Join(root, "mariadb.pid"),
			"--log-error=" + logFile, "--tmpdir=" + root,
			// Nothing but this test on loopback reaches it.
			"--skip-grant-tables", "--skip-name-resolve",
			// A test server: small and not durable.
			"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=0",
			"--skip-log-bin", "--performance-schema=OFF",
		}, runAs...)
		cmd := exec.Command(server, args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", server, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = waitMariaDB(m, exited); lastErr == nil {
			t.Cleanup(func() { stopMariaDB(t, cmd, exited, logFile) })
			break
		}
		cmd.Process.Kill()
		<-exited
	}
	if lastErr != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("starting MariaDB: %v\nserver log:\n%s", lastErr, log)
	}
	return m
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitMariaDB waits until the server answers a query (a loaded machine may
// take a while to start it), or exits.
func waitMariaDB(m *mariaDB, exited <-chan error) error {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on 127.0.0.1:%d: %w", m.port, err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the server exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stopMariaDB stops the server with SIGTERM (a clean shutdown) and waits for
// it; one that does not stop within two minutes is killed.
func stopMariaDB(t *testing.T, cmd *exec.Cmd, exited <-chan error, logFile string) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(logFile)
		t.Errorf("MariaDB did not stop on SIGTERM within 2 minutes; killed\nserver log:\n%s", log)
	}
}

// openMySQL creates a database with the outbox and orders tables on m.
func openMySQL(t *testing.T, m *mariaDB, database string) *sql.DB {
	t.Helper()
	admin, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + database); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", m.DSN(database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{weir.OutboxTableMySQL, `CREATE TABLE orders (id INTEGER PRIMARY KEY, total TEXT)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

func TestOutboxRelayMySQL(t *testing.T) {
	m := startMariaDB(t)
	s := startServer(t)
	c := s.dial(t)
	db := openMySQL(t, m, "app")
	ob := weir.Outbox{Dialect: weir.OutboxMySQL}
	writeOrders(t, db, ob, 1, 30)

	relayKilledAfterPublish(t, db, c, ob)
	if n := countRows(t, db); n != 30 {
		t.Fatalf("after the relay died: %d rows, want all 30 still there", n)
	}
	if n := len(readAll(t, c, "outbox.event.order")) + len(readAll(t, c, "outbox.event.order_line")); n != 10 {
		t.Fatalf("after the relay died: %d events published, want its first batch of 10", n)
	}
	// Restarted, two relays at once sharing the rows (FOR UPDATE SKIP
	// LOCKED): the first batch is published again and dropped by the
	// streams' dedup window. Each event once; the order holds within a
	// batch, not across the relays, so it is not checked here.
	runRelays(t, db, c, ob, 2)
	counts := checkRelayed(t, c, 30, map[string]int{relayStreams[0]: 30, relayStreams[1]: 30})
	// One relay: the events written later are appended in id order.
	writeOrders(t, db, ob, 31, 5)
	runRelays(t, db, c, ob, 1)
	checkRelayed(t, c, 35, counts)

	// Header columns, on another database of the same server.
	checkOutboxHeaderColumns(t, c, openMySQL(t, m, "headers"), weir.OutboxMySQL,
		`ALTER TABLE outbox ADD COLUMN tenant VARCHAR(255) NULL, ADD COLUMN trace_parent VARCHAR(55) NULL`)
}
