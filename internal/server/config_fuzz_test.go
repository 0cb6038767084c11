package server

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfigFile loads arbitrary bytes as the YAML configuration file: it
// never panics, and whatever it refuses, loading or validating, is refused
// with an error that wraps ErrInvalidConfig (the one that names the
// option or the line).
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{
		"",
		"data: /var/lib/weir\nfsync: interval\nfsync-interval: 10ms\n",
		"kafka-addr: 127.0.0.1:9092\namqp-addr:\nmqtt-addr: \"\"\nhttp-addr: :8080\n",
		"max-record-bytes: 1MiB\nlog-level: debug\nlog-format: json\n",
		"users: users.yaml\ninsecure-listen-any: \"true\"\npprof-addr: 127.0.0.1:6060\n",
		"fsync: sometimes\n",
		"unknown-key: 1\n",
		"data: [1, 2]\n",
		"connectors:\n  - name: pg\n    type: postgres\n",
		"\t- :\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "weir.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c := DefaultConfig()
		if _, err := c.loadFile(path); err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("load: %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		if err := c.Validate(); err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("validate: %v does not wrap ErrInvalidConfig", err)
		}
	})
}
