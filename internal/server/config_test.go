package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// noFile marks a test case that passes no --config.
const noFile = "\x00"

// loadConfig runs the whole loading path: flags parsed from args (with
// --config pointing at a file holding yaml unless yaml is noFile), the
// environment given by env, then Load. It returns the file's path too.
func loadConfig(t *testing.T, yaml string, env map[string]string, args ...string) (Config, string, error) {
	t.Helper()
	var path string
	if yaml != noFile {
		path = filepath.Join(t.TempDir(), "weir.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", path}, args...)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	cfg, err := flags.Load(func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	return cfg, path, err
}

func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name string
		yaml string // noFile for no --config
		env  map[string]string
		args []string
		want func(c *Config) // applied to DefaultConfig()
	}{
		{
			name: "defaults",
			yaml: noFile,
			want: func(c *Config) {},
		},
		{
			name: "empty file keeps defaults",
			yaml: "",
			want: func(c *Config) {},
		},
		{
			name: "kafka auto-create off as a YAML boolean",
			yaml: "kafka-auto-create-topics: false\n",
			want: func(c *Config) { c.KafkaAutoCreateTopics = "false" },
		},
		{
			name: "comment-only file keeps defaults",
			yaml: "# nothing configured yet\n",
			want: func(c *Config) {},
		},
		{
			name: "file overrides defaults",
			yaml: "data: /var/lib/weir\nkafka-addr: 127.0.0.1:19092\namqp-addr: :15672\nmqtt-addr: :11883\nhttp-addr: :18080\n" +
				"fsync: interval\nfsync-interval: 10ms\nlog-level: debug\nlog-format: json\n",
			want: func(c *Config) {
				c.DataDir = "/var/lib/weir"
				c.KafkaAddr = "127.0.0.1:19092"
				c.AMQPAddr = ":15672"
				c.MQTTAddr = ":11883"
				c.HTTPAddr = ":18080"
				c.FSync = FSyncInterval
				c.FSyncInterval = 10 * time.Millisecond
				c.LogLevel = "debug"
				c.LogFormat = "json"
			},
		},
		{
			name: "file sets only the keys it has",
			yaml: "fsync: never\n",
			want: func(c *Config) { c.FSync = FSyncNever },
		},
		{
			name: "fsync method",
			yaml: "fsync-method: fdatasync\n",
			want: func(c *Config) { c.FSyncMethod = FSyncMethodFdatasync },
		},
		{
			name: "environment overrides defaults",
			yaml: noFile,
			env: map[string]string{
				"WEIR_DATA": "/srv/weir", "WEIR_KAFKA_ADDR": ":1", "WEIR_AMQP_ADDR": ":2", "WEIR_MQTT_ADDR": ":3",
				"WEIR_HTTP_ADDR": ":4", "WEIR_FSYNC": "interval", "WEIR_FSYNC_INTERVAL": "2s",
				"WEIR_LOG_LEVEL": "warn", "WEIR_LOG_FORMAT": "json",
			},
			want: func(c *Config) {
				c.DataDir = "/srv/weir"
				c.KafkaAddr, c.AMQPAddr, c.MQTTAddr, c.HTTPAddr = ":1", ":2", ":3", ":4"
				c.FSync = FSyncInterval
				c.FSyncInterval = 2 * time.Second
				c.LogLevel = "warn"
				c.LogFormat = "json"
			},
		},
		{
			name: "environment overrides file",
			yaml: "kafka-addr: :1\nfsync: never\n",
			env:  map[string]string{"WEIR_KAFKA_ADDR": ":2"},
			want: func(c *Config) { c.KafkaAddr = ":2"; c.FSync = FSyncNever },
		},
		{
			name: "flags override defaults",
			yaml: noFile,
			args: []string{
				"--data", "d", "--kafka-addr", ":1", "--amqp-addr", ":2", "--mqtt-addr", ":3", "--http-addr", ":4",
				"--fsync", "interval", "--fsync-interval", "1m", "--log-level", "error", "--log-format", "json",
			},
			want: func(c *Config) {
				c.DataDir = "d"
				c.KafkaAddr, c.AMQPAddr, c.MQTTAddr, c.HTTPAddr = ":1", ":2", ":3", ":4"
				c.FSync = FSyncInterval
				c.FSyncInterval = time.Minute
				c.LogLevel = "error"
				c.LogFormat = "json"
			},
		},
		{
			name: "flags override environment and file",
			yaml: "kafka-addr: :1\n",
			env:  map[string]string{"WEIR_KAFKA_ADDR": ":2"},
			args: []string{"--kafka-addr=:3"},
			want: func(c *Config) { c.KafkaAddr = ":3" },
		},
		{
			name: "flag given its default value still overrides environment",
			yaml: noFile,
			env:  map[string]string{"WEIR_FSYNC": "never"},
			args: []string{"--fsync", "always"},
			want: func(c *Config) {},
		},
		{
			name: "empty string in file turns listener off",
			yaml: "amqp-addr: \"\"\n",
			want: func(c *Config) { c.AMQPAddr = "" },
		},
		{
			name: "key without value in file turns listener off",
			yaml: "mqtt-addr:\nhttp-addr: ~\n",
			want: func(c *Config) { c.MQTTAddr = ""; c.HTTPAddr = "" },
		},
		{
			name: "empty environment variable turns listener off",
			yaml: "kafka-addr: :1\n",
			env:  map[string]string{"WEIR_KAFKA_ADDR": ""},
			want: func(c *Config) { c.KafkaAddr = "" },
		},
		{
			name: "empty flag turns listener off",
			yaml: noFile,
			env:  map[string]string{"WEIR_HTTP_ADDR": ":2"},
			args: []string{"--http-addr="},
			want: func(c *Config) { c.HTTPAddr = "" },
		},
		{
			name: "empty flag as separate argument turns listener off",
			yaml: noFile,
			args: []string{"--kafka-addr", "", "--amqp-addr", ""},
			want: func(c *Config) { c.KafkaAddr = ""; c.AMQPAddr = "" },
		},
		{
			name: "record size with a unit in file",
			yaml: "max-record-bytes: 2MiB\n",
			want: func(c *Config) { c.MaxRecordBytes = 2 << 20 },
		},
		{
			name: "record size as a number in file",
			yaml: "max-record-bytes: 65536\n",
			want: func(c *Config) { c.MaxRecordBytes = 65536 },
		},
		{
			name: "record size from environment and flag",
			yaml: noFile,
			env:  map[string]string{"WEIR_MAX_RECORD_BYTES": "512KiB"},
			args: []string{"--max-record-bytes", "4MB"},
			want: func(c *Config) { c.MaxRecordBytes = 4_000_000 },
		},
		{
			name: "record size from environment",
			yaml: noFile,
			env:  map[string]string{"WEIR_MAX_RECORD_BYTES": "512KiB"},
			want: func(c *Config) { c.MaxRecordBytes = 512 << 10 },
		},
		{
			name: "unrelated variables are ignored",
			yaml: "mqtt-addr: :3\n",
			env:  map[string]string{"WEIR_MQTT": ":9", "KAFKA_ADDR": ":9", "weir_mqtt_addr": ":9"},
			want: func(c *Config) { c.MQTTAddr = ":3" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := loadConfig(t, tt.yaml, tt.env, tt.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := DefaultConfig()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load =\n\t%+v\nwant\n\t%+v", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	const file = "<file>" // replaced by the path of the YAML file
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		args []string
		want []string // substrings of the error
	}{
		{
			name: "unknown key in file",
			yaml: "data: d\nkafka-adr: :9092\n",
			want: []string{file, "line 2", `unknown key "kafka-adr"`, "kafka-addr"},
		},
		{
			name: "config options are not keys",
			yaml: "version: v9\n",
			want: []string{file, `unknown key "version"`},
		},
		{
			name: "list where a string belongs",
			yaml: "kafka-addr: [a, b]\n",
			want: []string{file, "line 1"},
		},
		{
			name: "number where a duration belongs",
			yaml: "fsync-interval: 50\n",
			want: []string{file, "line 1"},
		},
		{
			name: "bad duration in file",
			yaml: "fsync-interval: soon\n",
			want: []string{file, "line 1"},
		},
		{
			name: "YAML syntax error",
			yaml: "data: [unclosed\n",
			want: []string{file},
		},
		{
			name: "duplicate key",
			yaml: "data: a\ndata: b\n",
			want: []string{file, "data"},
		},
		{
			name: "bad fsync in file",
			yaml: "fsync: sometimes\n",
			want: []string{`fsync "sometimes" (from ` + file + `)`, "always, interval or never"},
		},
		{
			name: "bad fsync in environment",
			yaml: noFile,
			env:  map[string]string{"WEIR_FSYNC": "Always"},
			want: []string{`fsync "Always" (from WEIR_FSYNC)`, "always, interval or never"},
		},
		{
			name: "bad fsync flag",
			yaml: noFile,
			args: []string{"--fsync", "sometimes"},
			want: []string{`fsync "sometimes" (from --fsync)`},
		},
		{
			name: "bad duration in environment",
			yaml: noFile,
			env:  map[string]string{"WEIR_FSYNC_INTERVAL": "50"},
			want: []string{`fsync-interval "50" (from WEIR_FSYNC_INTERVAL)`, "not a duration"},
		},
		{
			name: "empty duration flag",
			yaml: noFile,
			args: []string{"--fsync-interval="},
			want: []string{`fsync-interval "" (from --fsync-interval)`, "not a duration"},
		},
		{
			name: "zero interval with fsync interval",
			yaml: noFile,
			args: []string{"--fsync", "interval", "--fsync-interval", "0s"},
			want: []string{`fsync-interval "0s" (from --fsync-interval)`, "must be positive"},
		},
		{
			name: "unknown fsync method",
			yaml: noFile,
			env:  map[string]string{"WEIR_FSYNC_METHOD": "fsync"},
			want: []string{`fsync-method "fsync" (from WEIR_FSYNC_METHOD)`, "must be auto, syncfs or fdatasync"},
		},
		{
			name: "negative interval",
			yaml: noFile,
			env:  map[string]string{"WEIR_FSYNC_INTERVAL": "-1s"},
			want: []string{`fsync-interval "-1s" (from WEIR_FSYNC_INTERVAL)`, "negative"},
		},
		{
			name: "address without port",
			yaml: noFile,
			args: []string{"--kafka-addr", "localhost"},
			want: []string{`kafka-addr "localhost" (from --kafka-addr)`, "missing port"},
		},
		{
			name: "address with named port",
			yaml: noFile,
			env:  map[string]string{"WEIR_HTTP_ADDR": ":http"},
			want: []string{`http-addr ":http" (from WEIR_HTTP_ADDR)`, "port must be a number"},
		},
		{
			name: "port out of range",
			yaml: "mqtt-addr: :65536\n",
			want: []string{`mqtt-addr ":65536" (from ` + file + `)`, "port must be a number"},
		},
		{
			name: "address with too many colons",
			yaml: noFile,
			args: []string{"--amqp-addr", "::1:5672"},
			want: []string{`amqp-addr "::1:5672" (from --amqp-addr)`, "too many colons"},
		},
		{
			name: "bad log level",
			yaml: noFile,
			args: []string{"--log-level", "loud"},
			want: []string{`log-level "loud" (from --log-level)`, "debug, info, warn or error"},
		},
		{
			name: "kafka auto-create that is not a boolean",
			yaml: noFile,
			args: []string{"--kafka-auto-create-topics", "maybe"},
			want: []string{`kafka-auto-create-topics "maybe" (from --kafka-auto-create-topics)`, "true or false"},
		},
		{
			name: "bad log format",
			yaml: noFile,
			env:  map[string]string{"WEIR_LOG_FORMAT": "xml"},
			want: []string{`log-format "xml" (from WEIR_LOG_FORMAT)`, "text or json"},
		},
		{
			name: "record size that is not a size",
			yaml: noFile,
			args: []string{"--max-record-bytes", "1XB"},
			want: []string{`max-record-bytes "1XB" (from --max-record-bytes)`, "not a size"},
		},
		{
			name: "zero record size",
			yaml: noFile,
			env:  map[string]string{"WEIR_MAX_RECORD_BYTES": "0"},
			want: []string{`max-record-bytes "0" (from WEIR_MAX_RECORD_BYTES)`, "must be 1 byte to 256MiB"},
		},
		{
			name: "record size over the limit",
			yaml: "max-record-bytes: 1GiB\n",
			want: []string{`max-record-bytes "1GiB" (from ` + file + `)`, "must be 1 byte to 256MiB"},
		},
		{
			name: "bad record size in file",
			yaml: "max-record-bytes: lots\n",
			want: []string{file, "not a size"},
		},
		{
			name: "empty data directory",
			yaml: noFile,
			args: []string{"--data="},
			want: []string{`data "" (from --data)`, "must not be empty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := loadConfig(t, tt.yaml, tt.env, tt.args...)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q does not wrap ErrInvalidConfig", err)
			}
			msg := err.Error()
			for _, want := range tt.want {
				want = strings.ReplaceAll(want, file, path)
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans several lines", msg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	flags := BindFlags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	_, err := flags.Load(func(string) (string, bool) { return "", false })
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load = %v, want an ErrInvalidConfig naming %s that wraps os.ErrNotExist", err, path)
	}
}

// TestOptionNames pins the names users type, which the table derives from
// the Config tags: renaming a field's tag must be a deliberate change.
func TestOptionNames(t *testing.T) {
	var keys, envs []string
	for _, o := range options {
		keys = append(keys, o.key)
		envs = append(envs, o.env)
		if o.help == "" || o.arg == "" {
			t.Errorf("option %s has no help or arg tag", o.key)
		}
	}
	wantKeys := []string{"data", "kafka-addr", "kafka-auto-create-topics", "amqp-addr", "mqtt-addr", "mqtt-sys-interval", "http-addr", "fsync", "fsync-interval", "fsync-method", "max-record-bytes", "disk-free-min", "log-level", "log-format", "users", "insecure-listen-any",
		"kafka-tls-addr", "amqp-tls-addr", "mqtt-tls-addr", "https-addr", "tls-cert-file", "tls-key-file", "tls-client-ca-file",
		"tls-client-auth", "tls-min-version", "tls-client-cert-user", "tls-reload-interval", "max-connections", "max-listener-connections", "max-connections-per-user", "max-streams-per-connection", "pprof-addr", "otlp-endpoint", "trace-sample-ratio"}
	wantEnvs := []string{"WEIR_DATA", "WEIR_KAFKA_ADDR", "WEIR_KAFKA_AUTO_CREATE_TOPICS", "WEIR_AMQP_ADDR", "WEIR_MQTT_ADDR", "WEIR_MQTT_SYS_INTERVAL", "WEIR_HTTP_ADDR", "WEIR_FSYNC", "WEIR_FSYNC_INTERVAL", "WEIR_FSYNC_METHOD", "WEIR_MAX_RECORD_BYTES", "WEIR_DISK_FREE_MIN", "WEIR_LOG_LEVEL", "WEIR_LOG_FORMAT", "WEIR_USERS", "WEIR_INSECURE_LISTEN_ANY",
		"WEIR_KAFKA_TLS_ADDR", "WEIR_AMQP_TLS_ADDR", "WEIR_MQTT_TLS_ADDR", "WEIR_HTTPS_ADDR", "WEIR_TLS_CERT_FILE", "WEIR_TLS_KEY_FILE", "WEIR_TLS_CLIENT_CA_FILE",
		"WEIR_TLS_CLIENT_AUTH", "WEIR_TLS_MIN_VERSION", "WEIR_TLS_CLIENT_CERT_USER", "WEIR_TLS_RELOAD_INTERVAL", "WEIR_MAX_CONNECTIONS", "WEIR_MAX_LISTENER_CONNECTIONS", "WEIR_MAX_CONNECTIONS_PER_USER", "WEIR_MAX_STREAMS_PER_CONNECTION", "WEIR_PPROF_ADDR", "WEIR_OTLP_ENDPOINT", "WEIR_TRACE_SAMPLE_RATIO"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("keys = %q, want %q", keys, wantKeys)
	}
	if !slices.Equal(envs, wantEnvs) {
		t.Errorf("environment variables = %q, want %q", envs, wantEnvs)
	}

	// Every option is a flag, and every flag but --config is an option.
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	BindFlags(fs)
	var flags []string
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	wantFlags := append(slices.Clone(wantKeys), "config")
	slices.Sort(wantFlags)
	if !slices.Equal(flags, wantFlags) {
		t.Errorf("flags = %q, want %q", flags, wantFlags)
	}
}

// TestOptionsCoverConfig checks that every Config field but those set by the
// program (Version, HTTPListener, and the Kafka settings embedders and tests
// set) and the lists only the file gives (file:"only") can be set from
// every source.
func TestOptionsCoverConfig(t *testing.T) {
	programSet := []string{"Version", "HTTPListener", "KafkaShareSessionTimeout", "KafkaAuthenticator", "FreeSpace"}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if typ.Field(i).Tag.Get("file") == "only" {
			continue
		}
		covered := slices.ContainsFunc(options, func(o option) bool { return o.field == i })
		if covered == slices.Contains(programSet, name) {
			t.Errorf("Config.%s: covered by options = %v", name, covered)
		}
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	c.KafkaAddr, c.AMQPAddr, c.MQTTAddr, c.HTTPAddr = "", "", "", ""
	if err := c.Validate(); err != nil {
		t.Errorf("every listener off: Validate() = %v", err)
	}
}

func TestValidateWithoutSource(t *testing.T) {
	c := DefaultConfig()
	c.FSync = "later"
	err := c.Validate()
	want := `invalid configuration: fsync "later": must be always, interval or never`
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
}

func TestPrintUsageListsEveryOption(t *testing.T) {
	var b bytes.Buffer
	BindFlags(flag.NewFlagSet("test", flag.ContinueOnError)).PrintUsage(&b)
	for _, o := range options {
		for _, want := range []string{"--" + o.key + " " + o.arg, o.env, o.help} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("usage does not contain %q:\n%s", want, b.String())
			}
		}
	}
}

func TestNewLogger(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LogFormat = "json"
	cfg.LogLevel = "warn"
	var b bytes.Buffer
	logger, err := NewLogger(&b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("hidden")
	logger.Warn("shown", "k", "v")
	var entry map[string]any
	if err := json.Unmarshal(b.Bytes(), &entry); err != nil {
		t.Fatalf("want one JSON entry, got %q: %v", b.String(), err)
	}
	if entry["msg"] != "shown" || entry["k"] != "v" {
		t.Errorf("entry = %v", entry)
	}

	cfg.LogFormat = "yaml"
	if _, err := NewLogger(io.Discard, cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewLogger with format yaml: err = %v, want ErrInvalidConfig", err)
	}
}

func TestByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"0", 0, "0"},
		{"1048576", 1 << 20, "1MiB"},
		{"1MiB", 1 << 20, "1MiB"},
		{"1536KiB", 1536 << 10, "1536KiB"},
		{" 2 GiB ", 2 << 30, "2GiB"},
		{"1000", 1000, "1000"},
		{"1KB", 1000, "1000"},
		{"3MB", 3_000_000, "3000000"},
		{"7B", 7, "7"},
	} {
		got, err := ParseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ByteSize(%d).String() = %q, want %q", got, s, tt.str)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "1 TiB", "9999999999GiB", "0x10"} {
		if got, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", bad, got)
		}
	}
}
