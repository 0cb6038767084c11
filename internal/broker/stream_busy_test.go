package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/vfs"
)

// gatedFS holds every directory sync while a gate is set, telling entered.
type gatedFS struct {
	vfs.FS
	gate    atomic.Pointer[chan struct{}]
	entered chan string
}

func (g *gatedFS) SyncDir(dir string) error {
	if c := g.gate.Load(); c != nil {
		g.entered <- dir
		<-*c
	}
	return g.FS.SyncDir(dir)
}

// TestStreamChangesDoNotStopTraffic: creating a stream (its files, their
// directory syncs, the catalog's commit) runs without the broker-wide lock
// that every publish takes to find its stream, so a slow creation (an MQTT
// client's session queue, among thousands connecting) holds up no publish.
// Meanwhile a second creation of the name waits for the first and then
// finds the stream, and Close waits for it.
func TestStreamChangesDoNotStopTraffic(t *testing.T) {
	fs := &gatedFS{FS: vfs.Default, entered: make(chan string, 16)}
	b, err := Open(Config{DataDir: t.TempDir(), FS: fs, JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "a", Partitions: 1})
	gate := make(chan struct{})
	fs.gate.Store(&gate)
	created := make(chan error, 1)
	go func() {
		_, err := b.CreateStream(ctx, StreamConfig{Name: "b", Partitions: 1})
		created <- err
	}()
	select {
	case <-fs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the creation never synced a directory")
	}
	published := make(chan error, 1)
	go func() {
		_, err := b.Publish(ctx, "a", []Record{{Value: []byte("v")}})
		published <- err
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("publish during a creation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a publish waited for another stream's creation")
	}
	// A second creation of the name waits for the first, then finds the
	// stream there (callers that create, ignore "exists" and use the
	// stream, as MQTT's shared subscriptions do, rely on that).
	again := make(chan error, 1)
	go func() {
		_, err := b.CreateStream(ctx, StreamConfig{Name: "b", Partitions: 1})
		if errors.Is(err, ErrStreamExists) {
			_, err = b.DescribeStream("b")
		}
		again <- err
	}()
	select {
	case err := <-again:
		t.Fatalf("a second creation returned during the first: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	fs.gate.Store(nil)
	close(gate)
	if err := <-created; err != nil {
		t.Fatalf("creation: %v", err)
	}
	if err := <-again; err != nil {
		t.Errorf("second creation, then describe: %v, want ErrStreamExists and the stream", err)
	}

	// Close waits for a creation in progress.
	gate = make(chan struct{})
	fs.gate.Store(&gate)
	go func() {
		_, err := b.CreateStream(ctx, StreamConfig{Name: "c", Partitions: 1})
		created <- err
	}()
	<-fs.entered
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned during a creation: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	fs.gate.Store(nil)
	close(gate)
	if err := <-created; err != nil {
		t.Fatalf("creation: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	b = openBroker(t, b.cfg.DataDir)
	defer b.Close()
	for _, name := range []string{"b", "c"} {
		if _, err := b.DescribeStream(name); err != nil {
			t.Errorf("stream %s is gone after reopening: %v", name, err)
		}
	}
}
