package server

import (
	"io"
	"log/slog"
)

// NewLogger returns the logger cfg asks for (LogLevel, LogFormat), writing
// to w. Its error wraps ErrInvalidConfig.
func NewLogger(w io.Writer, cfg Config) (*slog.Logger, error) {
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		return nil, invalidValue("log-level", cfg.LogLevel, err.Error())
	}
	format, err := parseLogFormat(cfg.LogFormat)
	if err != nil {
		return nil, invalidValue("log-format", cfg.LogFormat, err.Error())
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
