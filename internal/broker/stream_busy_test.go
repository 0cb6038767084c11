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

// hold makes directory syncs wait until release.
func (g *gatedFS) hold() {
	c := make(chan struct{})
	g.gate.Store(&c)
}

func (g *gatedFS) release() {
	if c := g.gate.Swap(nil); c != nil {
		close(*c)
	}
}

// async runs f in a goroutine and returns where its error comes.
func async(f func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return done
}

// stillWaiting fails the test if done comes within 100 ms.
func stillWaiting(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned while it should wait: %v", what, err)
	case <-time.After(100 * time.Millisecond):
	}
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
	create := func(name string) func() error {
		return func() error {
			_, err := b.CreateStream(ctx, StreamConfig{Name: name, Partitions: 1})
			return err
		}
	}
	fs.hold()
	created := async(create("b"))
	select {
	case <-fs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the creation never synced a directory")
	}
	published := async(func() error {
		_, err := b.Publish(ctx, "a", []Record{{Value: []byte("v")}})
		return err
	})
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
	again := async(func() error {
		err := create("b")()
		if errors.Is(err, ErrStreamExists) {
			_, err = b.DescribeStream("b")
		}
		return err
	})
	stillWaiting(t, again, "a second creation during the first")
	fs.release()
	if err := <-created; err != nil {
		t.Fatalf("creation: %v", err)
	}
	if err := <-again; err != nil {
		t.Errorf("second creation, then describe: %v, want ErrStreamExists and the stream", err)
	}

	// Close waits for a creation in progress.
	fs.hold()
	created = async(create("c"))
	<-fs.entered
	closed := async(b.Close)
	stillWaiting(t, closed, "Close during a creation")
	fs.release()
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
