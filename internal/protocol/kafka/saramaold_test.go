package kafka_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSaramaOld runs a genuinely old sarama release (Shopify/sarama v1.27.2,
// testdata/sarama-old, its own module): it never sends ApiVersions and uses
// the fixed request versions of the Kafka version it is configured for.
// It creates a topic, produces, and consumes with a group of two.
func TestSaramaOld(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	for _, version := range []string{"0.11.0.2", "1.0.0", "2.1.0"} {
		t.Run(version, func(t *testing.T) {
			w := startWeir(t)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // the first run builds the module
			defer cancel()
			cmd := exec.CommandContext(ctx, goTool, "run", ".", "-broker", w.addr, "-version", version, "-n", "150")
			cmd.Dir = "testdata/sarama-old"
			cmd.Env = append(cmd.Environ(), "GOWORK=off", "GOFLAGS=")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ok") {
				t.Fatalf("sarama v1.27.2 at Kafka %s: %v\n%s", version, err, out)
			}
		})
	}
}
