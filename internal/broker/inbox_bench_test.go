package broker

import (
	"context"
	"testing"
)

// BenchmarkInboxPublish publishes one 100-byte reply at a time to an inbox
// (no fsync), as a responder does.
func BenchmarkInboxPublish(b *testing.B) {
	br := openBroker(b, b.TempDir())
	defer br.Close()
	name, err := br.CreateInbox(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	rec := []Record{{Value: make([]byte, 100)}}
	for b.Loop() {
		if _, err := br.Publish(context.Background(), name, rec); err != nil {
			b.Fatal(err)
		}
	}
}
