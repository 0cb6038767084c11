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
	HTTPAddr              string        `yaml:"http-addr" arg:"addr" help:"HTTP listener address (API, console, /metrics, /healthz); empty turns it off"`
	FSync                 FSyncMode     `yaml:"fsync" arg:"mode" help:"when appended records are fsynced: always, interval or never"`
	FSyncInterval         time.Duration `yaml:"fsync-interval" arg:"duration" help:"time between fsyncs with fsync=interval"`
	// MaxRecordBytes bounds one record: key, value and headers.
	MaxRecordBytes ByteSize `yaml:"max-record-bytes" arg:"size" help:"largest record accepted (key, value and headers), in bytes or with a unit: 512KiB, 1MiB"`
	LogLevel       string   `yaml:"log-level" arg:"level" help:"log level: debug, info, warn or error"`
	LogFormat      string   `yaml:"log-format" arg:"format" help:"log format: text or json"`
	// Users names the users file (internal/auth); empty turns
	// authentication off, and then the listeners bind loopback only
	// unless InsecureListenAny is "true" (see auth.go).
	Users             string `yaml:"users" arg:"file" help:"users file (weir user add ...); every listener then requires authentication. Empty: no authentication, loopback only"`
	InsecureListenAny string `yaml:"insecure-listen-any" arg:"bool" help:"without a users file, listen on the configured addresses anyway instead of loopback only: true or false"`
	// PprofAddr serves Go's runtime profiles (pprof.go); empty: off.
	PprofAddr string `yaml:"pprof-addr" arg:"addr" help:"address that serves Go runtime profiles (/debug/pprof/) for diagnosis; empty turns it off; loopback only, as profiles are not authenticated"`

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
}

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
		DataDir:               "./weir-data",
		KafkaAddr:             ":9092",
		KafkaAutoCreateTopics: "true",
		AMQPAddr:              ":5672",
		MQTTAddr:              ":1883",
		HTTPAddr:              ":8080",
		FSync:                 FSyncAlways,
		FSyncInterval:         50 * time.Millisecond,
		MaxRecordBytes:        DefaultMaxRecordBytes,
		LogLevel:              "info",
		LogFormat:             "text",
		InsecureListenAny:     "false",
		Version:               "dev",
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
	if c.FSyncInterval < 0 {
		return invalidValue("fsync-interval", c.FSyncInterval.String(), "must not be negative")
	}
	if c.MaxRecordBytes <= 0 || c.MaxRecordBytes > MaxRecordBytesLimit {
		return invalidValue("max-record-bytes", c.MaxRecordBytes.String(), "must be 1 byte to "+MaxRecordBytesLimit.String())
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		return invalidValue("log-level", c.LogLevel, err.Error())
	}
	if _, err := parseLogFormat(c.LogFormat); err != nil {
		return invalidValue("log-format", c.LogFormat, err.Error())
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
