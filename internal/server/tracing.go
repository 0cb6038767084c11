package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// OpenTelemetry tracing (internal/tracing starts the spans): off unless
// otlp-endpoint is set; then spans are exported over OTLP/HTTP (protobuf)
// in batches. The exporter also honours the standard
// OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TIMEOUT variables
// (credentials of a hosted backend go there, not in the configuration).

// otlpTracesPath is the path OTLP/HTTP receivers take traces on; an
// endpoint given without a path gets it, as OTEL_EXPORTER_OTLP_ENDPOINT
// does.
const otlpTracesPath = "/v1/traces"

// parseOTLPEndpoint checks an otlp-endpoint value and returns the URL
// traces are posted to.
func parseOTLPEndpoint(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("must be a URL such as http://localhost:4318")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("must be an http:// or https:// URL such as http://localhost:4318")
	}
	if u.Host == "" {
		return "", errors.New("must name a host, as in http://localhost:4318")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = otlpTracesPath
	}
	return u.String(), nil
}

// parseSampleRatio checks a trace-sample-ratio value: a number from 0 to 1.
func parseSampleRatio(s string) (float64, error) {
	r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || r < 0 || r > 1 {
		return 0, errors.New("must be a number from 0 to 1")
	}
	return r, nil
}

// validateTracing checks the tracing options.
func (c *Config) validateTracing() error {
	if c.OTLPEndpoint != "" {
		if _, err := parseOTLPEndpoint(c.OTLPEndpoint); err != nil {
			return invalidValue("otlp-endpoint", c.OTLPEndpoint, err.Error())
		}
	}
	if _, err := parseSampleRatio(c.TraceSampleRatio); err != nil {
		return invalidValue("trace-sample-ratio", c.TraceSampleRatio, err.Error())
	}
	return nil
}

// setupTracing builds the tracer provider the front ends start their
// spans with, when otlp-endpoint is set, and registers it as a component:
// opened before the front ends, it is shut down after them, exporting the
// spans they ended last.
func (s *Server) setupTracing() error {
	tp, err := newTracerProvider(s.cfg)
	if err != nil || tp == nil {
		return err
	}
	s.Register(ComponentFunc("tracing", tp.Shutdown))
	s.tracerProvider = tp
	// The SDK reports failed exports through OpenTelemetry's global error
	// handler, which otherwise prints unstructured lines on stderr.
	logger := s.logger.With("component", "tracing")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("span export failed", "err", err)
	}))
	s.logger.Info("tracing on", "otlp_endpoint", s.cfg.OTLPEndpoint, "sample_ratio", s.cfg.TraceSampleRatio)
	return nil
}

// newTracerProvider returns the SDK's tracer provider for cfg, or nil when
// tracing is off. Spans a client sampled are always recorded; root spans
// (a request that carries no trace context) are sampled at
// trace-sample-ratio.
func newTracerProvider(cfg Config) (*sdktrace.TracerProvider, error) {
	if cfg.OTLPEndpoint == "" {
		return nil, nil
	}
	endpoint, err := parseOTLPEndpoint(cfg.OTLPEndpoint)
	if err != nil {
		return nil, invalidValue("otlp-endpoint", cfg.OTLPEndpoint, err.Error())
	}
	ratio, err := parseSampleRatio(cfg.TraceSampleRatio)
	if err != nil {
		return nil, invalidValue("trace-sample-ratio", cfg.TraceSampleRatio, err.Error())
	}
	exporter, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("weir"), semconv.ServiceVersion(cfg.Version))
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(res),
	), nil
}

// tracing returns the tracer provider of the front ends: nil when tracing
// is off.
func (s *Server) tracing() trace.TracerProvider {
	if s.tracerProvider == nil {
		return nil // not a nil *sdktrace.TracerProvider in an interface
	}
	return s.tracerProvider
}
