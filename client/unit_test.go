package weir

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// Kafka's clients' murmur2 test vectors (as signed 32-bit values).
func TestMurmur2(t *testing.T) {
	for key, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(key))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", key, got, want)
		}
	}
	for _, n := range []int32{1, 3, 8, 100} {
		for _, key := range []string{"", "a", "order-42", "\xff\xfe"} {
			if p := keyPartition([]byte(key), n); p < 0 || p >= n {
				t.Errorf("keyPartition(%q, %d) = %d", key, n, p)
			}
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: 2 * time.Second}
	for attempt := range 100 {
		ceiling := min(b.min<<min(attempt, 30), b.max)
		for range 50 {
			d := b.delay(attempt)
			if d < b.min/2 || d > ceiling {
				t.Fatalf("delay(%d) = %v, want within [%v, %v]", attempt, d, b.min/2, ceiling)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.wait(ctx, nil, 10) {
		t.Error("wait with a canceled context returned true")
	}
}

func TestBaseURL(t *testing.T) {
	for addr, want := range map[string]string{
		"localhost:8080":           "http://localhost:8080",
		"[::1]:8080":               "http://[::1]:8080",
		"http://weir:8080/":        "http://weir:8080",
		"https://weir.example/api": "https://weir.example/api",
	} {
		if got, err := baseURL(addr); err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

func TestWrapError(t *testing.T) {
	cause := errors.New("stream not found: \"x\"")
	err := wrapError(`describe stream "x"`, connect.NewError(connect.CodeNotFound, cause))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is does not follow the code: %v", err)
	}
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("connect.CodeOf = %v", connect.CodeOf(err))
	}
	if want := `describe stream "x": not_found: stream not found: "x"`; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	canceled := wrapError("publish", connect.NewError(connect.CodeCanceled, context.Canceled))
	if !errors.Is(canceled, context.Canceled) || retryable(canceled) {
		t.Errorf("a canceled call: %v (retryable %v)", canceled, retryable(canceled))
	}
	if !retryable(wrapError("x", connect.NewError(connect.CodeUnavailable, cause))) {
		t.Error("Unavailable is not retryable")
	}
}
