// Package server wires a Weir node together: configuration, the lifecycle of
// its components, the network listeners and the HTTP mux that serves
// /healthz, /metrics, the native API (internal/api) and, later, the console.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/kafka"
)

// ErrInvalidConfig is wrapped by every error that reports a configuration
// value Weir cannot use, whichever source it came from.
var ErrInvalidConfig = errors.New("invalid configuration")

// FSyncMode says when appended records are made durable on disk.
type FSyncMode string

// The fsync modes.
const (
	// FSyncAlways fsyncs before acknowledging a write (group-committed), so
	// no acknowledged record is ever lost.
	FSyncAlways FSyncMode = "always"
	// FSyncInterval fsyncs every Config.FSyncInterval; a crash loses at
	// most the records of the last interval.
	FSyncInterval FSyncMode = "interval"
	// FSyncNever leaves flushing to the operating system.
	FSyncNever FSyncMode = "never"
)

// FSyncMethod says how the partitions' files are flushed.
type FSyncMethod string

// The fsync methods.
const (
	// FSyncMethodAuto is syncfs where the kernel supports it, else fdatasync.
	FSyncMethodAuto FSyncMethod = "auto"
	// FSyncMethodSyncFS flushes, with one syncfs(2), every partition
	// waiting for a flush on a filesystem (storage.Flusher).
	FSyncMethodSyncFS FSyncMethod = "syncfs"
	// FSyncMethodFdatasync flushes each partition's file on its own.
	FSyncMethodFdatasync FSyncMethod = "fdatasync"
)

// Config is the configuration of a Weir node.
//
// Each field tagged with a yaml key is an option that can be set, in order
// of increasing precedence, by a default, the YAML file, a WEIR_* environment
// variable and a command-line flag. The tags are the single table those
// sources are derived from: the yaml key is also the flag name, the
// environment variable is WEIR_ followed by the key in upper case with
// dashes turned into underscores, arg names the flag's value in the help
// text and help describes it (see options.go).
type Config struct {
	DataDir   string `yaml:"data" arg:"dir" help:"directory that holds streams and state"`
	KafkaAddr string `yaml:"kafka-addr" arg:"addr" help:"Kafka listener address; empty turns it off"`
	// KafkaAutoCreateTopics is "true" or "false" (a string, as every option).
	KafkaAutoCreateTopics string        `yaml:"kafka-auto-create-topics" arg:"bool" help:"create a topic a Kafka client asks for that does not exist: true or false"`
	AMQPAddr              string        `yaml:"amqp-addr" arg:"addr" help:"AMQP 0-9-1 listener address; empty turns it off"`
	MQTTAddr              string        `yaml:"mqtt-addr" arg:"addr" help:"MQTT listener address; empty turns it off"`
	MQTTSysInterval       time.Duration `yaml:"mqtt-sys-interval" arg:"duration" help:"how often the MQTT $SYS topics are published; 0 turns them off"`
	HTTPAddr              string        `yaml:"http-addr" arg:"addr" help:"HTTP listener address (API, console, /metrics, /healthz); empty turns it off"`
	FSync                 FSyncMode     `yaml:"fsync" arg:"mode" help:"when appended records are fsynced: always, interval or never"`
	FSyncInterval         time.Duration `yaml:"fsync-interval" arg:"duration" help:"time between fsyncs with fsync=interval"`
	// FSyncMethod says how partitions' files are flushed (FSyncMethods).
	FSyncMethod FSyncMethod `yaml:"fsync-method" arg:"method" help:"how partition files are flushed: syncfs (one flush of the filesystem for every partition waiting; Linux 5.8 or later), fdatasync (each file on its own) or auto (syncfs where the kernel supports it)"`
	// MaxRecordBytes bounds one record: key, value and headers.
	MaxRecordBytes ByteSize `yaml:"max-record-bytes" arg:"size" help:"largest record accepted (key, value and headers), in bytes or with a unit: 512KiB, 1MiB"`
	// DiskFreeMin is the disk watermark (broker/watermark.go): below this
	// much free space on the data directory's disk, publishes are refused.
	DiskFreeMin ByteSize `yaml:"disk-free-min" arg:"size" help:"free disk space below which publishes are refused until space returns (consumers go on), as 256MiB or 1GiB; 0 turns the floor off (a write failing with ENOSPC still pauses publishes)"`
	LogLevel    string   `yaml:"log-level" arg:"level" help:"log level: debug, info, warn or error"`
	LogFormat   string   `yaml:"log-format" arg:"format" help:"log format: text or json"`
	// Users names the users file (internal/auth); empty turns
	// authentication off, and then the listeners bind loopback only
	// unless InsecureListenAny is "true" (see auth.go).
	Users             string `yaml:"users" arg:"file" help:"users file (weir user add ...); every listener then requires authentication. Empty: no authentication, loopback only"`
	InsecureListenAny string `yaml:"insecure-listen-any" arg:"bool" help:"without a users file, listen on the configured addresses anyway instead of loopback only: true or false"`

	// TLS listeners (tls.go) are listeners of their own beside the plain
	// ones, as RabbitMQ (5671), Mosquitto (8883) and Kafka deployments run
	// them; each is off until its address is set, and all of them serve
	// the certificate of TLSCertFile.
	KafkaTLSAddr      string        `yaml:"kafka-tls-addr" arg:"addr" help:"Kafka listener address with TLS (client security.protocol SSL, or SASL_SSL with users), usually :9093; empty turns it off"`
	AMQPTLSAddr       string        `yaml:"amqp-tls-addr" arg:"addr" help:"AMQP 0-9-1 over TLS (amqps://) listener address, usually :5671; empty turns it off"`
	MQTTTLSAddr       string        `yaml:"mqtt-tls-addr" arg:"addr" help:"MQTT over TLS listener address, usually :8883; empty turns it off"`
	HTTPSAddr         string        `yaml:"https-addr" arg:"addr" help:"HTTPS listener address (API over HTTP/2 or 1.1, console, /metrics, /healthz, MQTT over WSS at /mqtt), usually :8443; empty turns it off"`
	TLSCertFile       string        `yaml:"tls-cert-file" arg:"file" help:"PEM certificate of the TLS listeners, followed by its intermediate CA certificates"`
	TLSKeyFile        string        `yaml:"tls-key-file" arg:"file" help:"PEM private key of tls-cert-file"`
	TLSClientCAFile   string        `yaml:"tls-client-ca-file" arg:"file" help:"PEM CA certificates that client certificates are verified against (with tls-client-auth request or require)"`
	TLSClientAuth     string        `yaml:"tls-client-auth" arg:"mode" help:"client certificates on the TLS listeners: none, request (verified when sent) or require; per listener as in require,https=none"`
	TLSMinVersion     string        `yaml:"tls-min-version" arg:"version" help:"oldest TLS version accepted: 1.2 or 1.3"`
	TLSClientCertUser string        `yaml:"tls-client-cert-user" arg:"field" help:"with a users file, log clients with a verified client certificate in as the user it names (Kafka without SASL, AMQP SASL EXTERNAL, MQTT, HTTPS without credentials): none, cn, san-email or san-dns"`
	TLSReloadInterval time.Duration `yaml:"tls-reload-interval" arg:"duration" help:"how often the TLS files are checked for changes and reloaded (also on SIGHUP); 0 checks only on SIGHUP"`

	// Connection limits (limits.go); 0 is no limit.
	MaxConnections         int    `yaml:"max-connections" arg:"n" help:"open connections accepted on all listeners together; beyond it a new connection is closed at once; 0: no limit"`
	MaxListenerConnections string `yaml:"max-listener-connections" arg:"n" help:"open connections accepted on each listener: a number for every listener, or per listener as in 10000,http=500; 0: no limit"`
	MaxConnectionsPerUser  int    `yaml:"max-connections-per-user" arg:"n" help:"open Kafka, AMQP and MQTT connections of one user (with a users file; a user's max-connections in it wins); 0: no limit"`
	// MaxStreamsPerConnection is the HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS
	// of the HTTP listeners (server.go).
	MaxStreamsPerConnection int `yaml:"max-streams-per-connection" arg:"n" help:"HTTP/2 streams (API calls and subscriptions) open at once on one connection; a gRPC client waits for room beyond it, Go's and Connect's open another connection; 0: no limit"`
	// PprofAddr serves Go's runtime profiles (pprof.go); empty: off.
	PprofAddr string `yaml:"pprof-addr" arg:"addr" help:"address that serves Go runtime profiles (/debug/pprof/) for diagnosis; empty turns it off; loopback only, as profiles are not authenticated"`
	// OpenTelemetry tracing (tracing.go): off until OTLPEndpoint is set.
	OTLPEndpoint     string `yaml:"otlp-endpoint" arg:"url" help:"OTLP/HTTP endpoint spans are exported to, as http://localhost:4318 (/v1/traces is added when the URL has no path); empty turns tracing off"`
	TraceSampleRatio string `yaml:"trace-sample-ratio" arg:"ratio" help:"share of root spans (requests that carry no trace context) recorded, from 0 to 1; spans of a trace a client sampled are always recorded"`

	// Connectors are the change data capture connectors the node runs
	// (connectors.go); set only in the configuration file.
	Connectors []ConnectorConfig `yaml:"connectors" file:"only"`

	// Version is the build version reported by the weir_build_info metric
	// and in the startup log. The program sets it; it is not an option.
	Version string `yaml:"-"`
	// HTTPListener, when set, is where the HTTP API is served instead of
	// binding HTTPAddr: an embedding program's in-memory listener. Not an
	// option.
	HTTPListener net.Listener `yaml:"-"`
	// KafkaShareSessionTimeout removes a Kafka share-group member whose
	// heartbeats stopped for this long, releasing what it held (0: Kafka's
	// 45 s). Not an option: tests shorten it.
	KafkaShareSessionTimeout time.Duration `yaml:"-"`
	// KafkaAuthenticator, when set, makes Kafka clients authenticate with
	// SASL (PLAIN, SCRAM-SHA-256/512) against it. Not an option: Start sets
	// it from the users file (Users) unless an embedder or a test set it.
	KafkaAuthenticator kafka.Authenticator `yaml:"-"`
	// FreeSpace, when set, is where the disk watermark reads the free
	// space instead of statfs of DataDir (diskwatch.go). Not an option:
	// tests simulate a full disk with it.
	FreeSpace broker.FreeSpace `yaml:"-"`
}

// DefaultDiskFreeMin is the default disk watermark: RabbitMQ's default
// disk_free_limit is 50 MB, which leaves little room for a segment roll
// and the state store's compactions; 256 MiB does.
const DefaultDiskFreeMin ByteSize = 256 << 20

// DefaultMaxStreamsPerConnection is the default HTTP/2 stream limit of a
// connection. Go's HTTP/2 server allows 250, and grpc-go clients keep all
// of a channel's calls on one connection: their 251st subscription waited
// for one of the others to end. A subscription is a stream for as long as
// it lasts, so the default leaves room for a client with thousands.
const DefaultMaxStreamsPerConnection = 100_000

// Bounds of Config.MaxRecordBytes.
const (
	DefaultMaxRecordBytes ByteSize = 1 << 20
	MaxRecordBytesLimit   ByteSize = 256 << 20
)

// DefaultConfig returns the configuration Weir runs with when nothing is
// configured: data in ./weir-data, every listener on its usual port (on
// loopback only, as there is no users file: see auth.go), and every write
// fsynced before it is acknowledged.
func DefaultConfig() Config {
	return Config{
		DataDir:                 "./weir-data",
		KafkaAddr:               ":9092",
		KafkaAutoCreateTopics:   "true",
		AMQPAddr:                ":5672",
		MQTTAddr:                ":1883",
		MQTTSysInterval:         10 * time.Second,
		HTTPAddr:                ":8080",
		FSync:                   FSyncAlways,
		FSyncInterval:           50 * time.Millisecond,
		FSyncMethod:             FSyncMethodAuto,
		MaxRecordBytes:          DefaultMaxRecordBytes,
		DiskFreeMin:             DefaultDiskFreeMin,
		LogLevel:                "info",
		LogFormat:               "text",
		InsecureListenAny:       "false",
		TLSClientAuth:           "none",
		TLSMinVersion:           "1.2",
		TLSReloadInterval:       10 * time.Second,
		MaxListenerConnections:  "0",
		MaxStreamsPerConnection: DefaultMaxStreamsPerConnection,
		TraceSampleRatio:        "1",
		Version:                 "dev",
	}
}

// Validate reports the first option whose value Weir cannot use. Its error
// wraps ErrInvalidConfig and names the option.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return invalidValue("data", c.DataDir, "must not be empty")
	}
	for _, l := range c.listenerAddrs() {
		if err := validateAddr(l.Addr); err != nil {
			return invalidValue(l.Name+"-addr", l.Addr, err.Error())
		}
	}
	if err := validateAddr(c.PprofAddr); err != nil {
		return invalidValue("pprof-addr", c.PprofAddr, err.Error())
	}
	if host, _, _ := net.SplitHostPort(c.PprofAddr); c.PprofAddr != "" && !loopback(host) {
		return invalidValue("pprof-addr", c.PprofAddr, "must be a loopback address (127.0.0.1, ::1 or localhost): profiles are not authenticated")
	}
	if _, err := strconv.ParseBool(c.KafkaAutoCreateTopics); err != nil {
		return invalidValue("kafka-auto-create-topics", c.KafkaAutoCreateTopics, "must be true or false")
	}
	switch c.FSync {
	case FSyncAlways, FSyncInterval, FSyncNever:
	default:
		return invalidValue("fsync", string(c.FSync), "must be always, interval or never")
	}
	if c.FSyncInterval <= 0 && c.FSync == FSyncInterval {
		return invalidValue("fsync-interval", c.FSyncInterval.String(), "must be positive when fsync is interval")
	}
	switch c.FSyncMethod {
	case FSyncMethodAuto, FSyncMethodSyncFS, FSyncMethodFdatasync:
	default:
		return invalidValue("fsync-method", string(c.FSyncMethod), "must be auto, syncfs or fdatasync")
	}
	if c.FSyncInterval < 0 {
		return invalidValue("fsync-interval", c.FSyncInterval.String(), "must not be negative")
	}
	if c.MaxRecordBytes <= 0 || c.MaxRecordBytes > MaxRecordBytesLimit {
		return invalidValue("max-record-bytes", c.MaxRecordBytes.String(), "must be 1 byte to "+MaxRecordBytesLimit.String())
	}
	if c.DiskFreeMin < 0 {
		return invalidValue("disk-free-min", c.DiskFreeMin.String(), "must not be negative")
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		return invalidValue("log-level", c.LogLevel, err.Error())
	}
	if _, err := parseLogFormat(c.LogFormat); err != nil {
		return invalidValue("log-format", c.LogFormat, err.Error())
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.validateConnectionLimits(); err != nil {
		return err
	}
	if err := c.validateTracing(); err != nil {
		return err
	}
	if err := c.validateConnectors(); err != nil {
		return err
	}
	if err := c.validateSafeDefault(); err != nil {
		return err
	}
	return nil
}

// listenerAddrs lists every listener with its configured address, which is
// empty when that listener is off.
func (c *Config) listenerAddrs() []Endpoint {
	return []Endpoint{
		{Name: "kafka", Addr: c.KafkaAddr},
		{Name: "amqp", Addr: c.AMQPAddr},
		{Name: "mqtt", Addr: c.MQTTAddr},
		{Name: "http", Addr: c.HTTPAddr},
		{Name: "kafka-tls", Addr: c.KafkaTLSAddr},
		{Name: "amqp-tls", Addr: c.AMQPTLSAddr},
		{Name: "mqtt-tls", Addr: c.MQTTTLSAddr},
		{Name: "https", Addr: c.HTTPSAddr},
	}
}

// validateAddr checks that addr is empty (the listener is off) or a
// host:port a TCP listener can bind, with a numeric port (0 picks a free one).
func validateAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var addrErr *net.AddrError
		if errors.As(err, &addrErr) {
			return fmt.Errorf("%s (want host:port, for example :9092 or 127.0.0.1:9092)", addrErr.Err)
		}
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("must be debug, info, warn or error")
	}
	return level, nil
}

func parseLogFormat(s string) (string, error) {
	switch f := strings.ToLower(s); f {
	case "text", "json":
		return f, nil
	}
	return "", errors.New("must be text or json")
}

// valueError is an option value that cannot be used. Source, when known,
// says where the value came from, so that the message points at the flag,
// variable or file to fix.
type valueError struct {
	key    string
	value  string
	source string
	reason string
}

func invalidValue(key, value, reason string) *valueError {
	return &valueError{key: key, value: value, reason: reason}
}

func (e *valueError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s %q", ErrInvalidConfig, e.key, e.value)
	if e.source != "" {
		fmt.Fprintf(&b, " (from %s)", e.source)
	}
	fmt.Fprintf(&b, ": %s", e.reason)
	return b.String()
}

func (e *valueError) Unwrap() error { return ErrInvalidConfig }
