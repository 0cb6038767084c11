package weir

import (
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// initialGlobal is the global tracer provider as this test binary starts:
// the stand-in, as nothing installs a provider before the tests run.
var initialGlobal = otel.GetTracerProvider()

// Spans are skipped only for a client without a provider of its own while
// the global provider is the stand-in; any installed provider, even a
// no-op one, turns them back on.
func TestTracingOffOnlyWithoutAnyProvider(t *testing.T) {
	if !uninstalled(initialGlobal) {
		t.Fatalf("the global provider's stand-in (%T) is not recognized", initialGlobal)
	}
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(t.Context())
	if uninstalled(sdk) || uninstalled(noop.NewTracerProvider()) {
		t.Error("an installed provider is taken for the stand-in")
	}
	if newTracing(noop.NewTracerProvider(), nil).off() || newTracing(sdk, nil).off() {
		t.Error("a client given a provider skips its spans")
	}
}
