package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker/route"
	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/vfs"
)

// fakeFree is a FreeSpace whose answer the test sets: a full disk without
// filling one.
type fakeFree struct {
	free atomic.Uint64
	err  atomic.Pointer[error]
}

func newFakeFree(free uint64) *fakeFree {
	f := &fakeFree{}
	f.free.Store(free)
	return f
}

func (f *fakeFree) FreeBytes() (uint64, error) {
	if p := f.err.Load(); p != nil {
		return 0, *p
	}
	return f.free.Load(), nil
}

const (
	testFloor = 1 << 30 // the watermark of these tests: 1 GiB
	plenty    = 50 << 30
	tooLittle = 100 << 20
)

func openWatermarkBroker(t *testing.T, dir string, fs vfs.FS, free *fakeFree, hold time.Duration) *Broker {
	t.Helper()
	b, err := Open(Config{DataDir: dir, FS: fs, JanitorInterval: -1, DiskFreeMin: testFloor, FreeSpace: free,
		DiskCheckInterval: 5 * time.Millisecond, DiskFullHold: hold})
	if err != nil {
		t.Fatalf("open broker: %v", err)
	}
	return b
}

// waitDisk waits, with no time limit of its own but the test's, until the
// watermark says full (or not).
func waitDisk(t *testing.T, b *Broker, full bool) DiskStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		st, changed := b.DiskWatch()
		if st.Full == full {
			return st
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the watermark did not become full=%v: %+v", full, st)
		}
	}
}

// TestWatermarkRefusesPublishesNotReadsOrAcks: below the floor every
// client publish entry (Publish, PublishPartition, PublishExchange,
// AppendBatches) is refused with ErrDiskFull saying how much is free and
// required, and stores nothing; reading, receiving, acking and committing
// go on, dead-lettering (the broker's own write) too; publishing resumes
// when space returns, and nothing stored before is changed.
func TestWatermarkRefusesPublishesNotReadsOrAcks(t *testing.T) {
	ctx := context.Background()
	free := newFakeFree(plenty)
	b := openWatermarkBroker(t, t.TempDir(), nil, free, 0)
	defer b.Close()
	if st := b.DiskStatus(); !st.Enabled || st.Full || st.Min != testFloor || st.Free != plenty {
		t.Fatalf("status at start: %+v", st)
	}
	if _, err := b.CreateQueue(ctx, QueueConfig{Name: "work", Subscription: SubscriptionConfig{MaxDeliveries: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "fan", Type: route.Fanout}); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, "fan", Binding{Destination: "work"}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		publish(t, b, "work", Record{Value: fmt.Appendf(nil, "before-%d", i)})
	}

	free.free.Store(tooLittle)
	waitDisk(t, b, true)

	_, err := b.Publish(ctx, "work", []Record{{Value: []byte("refused")}})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("publish below the watermark: %v, want ErrDiskFull", err)
	}
	if want := "(100.0 MiB free, 1.0 GiB required)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if _, err := b.PublishPartition(ctx, "work", 0, []Record{{Value: []byte("refused")}}); !errors.Is(err, ErrDiskFull) {
		t.Errorf("PublishPartition: %v, want ErrDiskFull", err)
	}
	if _, err := b.PublishExchange(ctx, "fan", "", []Record{{Value: []byte("refused")}}); !errors.Is(err, ErrDiskFull) {
		t.Errorf("PublishExchange: %v, want ErrDiskFull", err)
	}
	batch, err := record.AppendBatch(nil, record.DefaultBatchOptions(), []record.Record{{Value: []byte("refused")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendBatches(ctx, "work", 0, batch); !errors.Is(err, ErrDiskFull) {
		t.Errorf("AppendBatches: %v, want ErrDiskFull", err)
	}
	if st := b.DiskStatus(); st.Refused != 4 {
		t.Errorf("refused %d publishes, want 4", st.Refused)
	}
	// The bookkeeping of front ends is not refused.
	createStream(t, b, StreamConfig{Name: "_sessions"})
	if _, err := b.Publish(Bookkeeping(ctx), "_sessions", []Record{{Key: []byte("client"), Value: []byte("state")}}); err != nil {
		t.Errorf("bookkeeping publish: %v", err)
	}

	// Consumers go on: receive, ack (a state write), reject into the
	// dead-letter queue (a broker write).
	ds, err := b.Receive(ctx, "work", "work", "c", 4, 5*time.Second)
	if err != nil || len(ds) != 4 {
		t.Fatalf("receive below the watermark: %d, %v", len(ds), err)
	}
	var acks []DeliveryRef
	for _, d := range ds[:3] {
		acks = append(acks, DeliveryRef{Partition: d.Partition, Offset: d.Offset})
	}
	if err := b.Ack(ctx, "work", "work", "c", acks); err != nil {
		t.Fatalf("ack below the watermark: %v", err)
	}
	if err := b.Reject(ctx, "work", "work", "c", []DeliveryRef{{Partition: ds[3].Partition, Offset: ds[3].Offset}}, "bad"); err != nil {
		t.Fatalf("reject below the watermark: %v", err)
	}
	// Dead-lettering is asynchronous: wait for it (the test's deadline).
	for {
		info, err := b.DescribeSubscription("work", "work")
		if err != nil {
			t.Fatal(err)
		}
		if info.Depth == 0 && info.DeadLettered == 1 {
			break
		}
		if t.Context().Err() != nil {
			t.Fatalf("after the acks and the reject: %+v", info)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := fetchAll(t, b, "work.dlq", 0, 0); len(got) != 1 || string(got[0].Value) != "before-3" {
		t.Errorf("dead-letter queue: %v, want before-3", got)
	}

	free.free.Store(plenty)
	waitDisk(t, b, false)
	res := publish(t, b, "work", Record{Value: []byte("after")})
	// Offsets 0-3 hold the records published before (acked, so a queue's
	// retention may drop them); none of the refused ones was stored.
	if res[0].Offset != 4 {
		t.Errorf("the first record after the block landed at %d, want 4", res[0].Offset)
	}
	if got := fetchAll(t, b, "work", 0, 4); len(got) != 1 || string(got[0].Value) != "after" {
		t.Errorf("stream from offset 4: %v, want after", got)
	}
}

// TestWatermarkENOSPC: a write failing with ENOSPC (the storage's error
// filesystem) blocks client publishes at once, even though the free-space
// source still reports room, until that grows; the failed publish left
// nothing behind and, after a restart, every acknowledged record is there.
func TestWatermarkENOSPC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	efs := vfs.NewErrorFS(vfs.Default)
	free := newFakeFree(2 << 30)
	b := openWatermarkBroker(t, dir, efs, free, time.Hour)
	createStream(t, b, StreamConfig{Name: "orders"})
	publish(t, b, "orders", Record{Value: []byte("one")})

	efs.FailWritesAfter(0, vfs.ENOSPC())
	if _, err := b.Publish(ctx, "orders", []Record{{Value: []byte("lost")}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("publish on a full disk: %v, want ENOSPC", err)
	}
	st := waitDisk(t, b, true)
	if !st.ENOSPC {
		t.Errorf("status %+v, want ENOSPC", st)
	}
	_, err := b.Publish(ctx, "orders", []Record{{Value: []byte("refused")}})
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("publish after ENOSPC: %v, want ErrDiskFull saying no space is left", err)
	}
	// Reads go on.
	if got := fetchAll(t, b, "orders", 0, 0); len(got) != 1 {
		t.Fatalf("read after ENOSPC: %d records, want 1", len(got))
	}

	// Space returns: the fault ends and the free space grows.
	efs.Reset()
	free.free.Add(64 << 20)
	waitDisk(t, b, false)
	publish(t, b, "orders", Record{Value: []byte("two")})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openWatermarkBroker(t, dir, vfs.Default, newFakeFree(plenty), 0)
	defer b.Close()
	var values []string
	for _, r := range fetchAll(t, b, "orders", 0, 0) {
		values = append(values, string(r.Value))
	}
	if got := strings.Join(values, ","); got != "one,two" {
		t.Errorf("after a restart: %s, want one,two", got)
	}
}

// TestWatermarkENOSPCHoldEnds: without the free space growing, the block
// after an ENOSPC ends with DiskFullHold, and a publish is tried again.
func TestWatermarkENOSPCHoldEnds(t *testing.T) {
	ctx := context.Background()
	efs := vfs.NewErrorFS(vfs.Default)
	b := openWatermarkBroker(t, t.TempDir(), efs, newFakeFree(plenty), time.Millisecond)
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "orders"})
	efs.FailWritesAfter(0, vfs.ENOSPC())
	if _, err := b.Publish(ctx, "orders", []Record{{Value: []byte("x")}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("publish on a full disk: %v, want ENOSPC", err)
	}
	// The monitor samples at once after an ENOSPC; with a hold of 1 ms,
	// the block may be over before this looks: wait for the end of it.
	efs.Reset()
	if err := b.WaitDiskSpace(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "orders", Record{Value: []byte("y")})
}

// TestWatermarkSampleErrorKeepsState: a failing free-space source neither
// blocks publishing nor lifts a block.
func TestWatermarkSampleErrorKeepsState(t *testing.T) {
	free := newFakeFree(plenty)
	b := openWatermarkBroker(t, t.TempDir(), nil, free, 0)
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "s"})
	statfsErr := errors.New("statfs: input/output error")
	free.err.Store(&statfsErr)
	free.free.Store(tooLittle) // not seen while the source fails
	waitSampleErr(t, b, statfsErr)
	publish(t, b, "s", Record{Value: []byte("still admitted")})

	free.err.Store(nil)
	waitDisk(t, b, true)
	free.err.Store(&statfsErr)
	free.free.Store(plenty)
	waitSampleErr(t, b, statfsErr)
	if _, err := b.Publish(context.Background(), "s", []Record{{Value: []byte("x")}}); !errors.Is(err, ErrDiskFull) {
		t.Errorf("publish while the source fails after a block: %v, want ErrDiskFull", err)
	}
}

func waitSampleErr(t *testing.T, b *Broker, want error) {
	t.Helper()
	for i := 0; ; i++ {
		if st := b.DiskStatus(); errors.Is(st.SampleErr, want) {
			return
		}
		if err := t.Context().Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the monitor samples every 5 ms
	}
}

// TestWatermarkOffByDefault: a broker configured with neither a floor nor
// a source has no watermark, so an ENOSPC blocks nothing beyond itself.
func TestWatermarkOffByDefault(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.Default)
	b := openFaultBroker(t, t.TempDir(), efs)
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "s"})
	efs.FailWritesAfter(0, vfs.ENOSPC())
	if _, err := b.Publish(context.Background(), "s", []Record{{Value: []byte("x")}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("publish: %v, want ENOSPC", err)
	}
	efs.Reset()
	publish(t, b, "s", Record{Value: []byte("y")})
	if st := b.DiskStatus(); st.Enabled || st.Full {
		t.Errorf("status %+v, want off", st)
	}
}

func TestDirFreeSpace(t *testing.T) {
	free, err := DirFreeSpace(t.TempDir()).FreeBytes()
	if err != nil || free == 0 {
		t.Fatalf("free space of a temporary directory: %d, %v", free, err)
	}
	if _, err := DirFreeSpace("/no/such/weir/dir").FreeBytes(); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("missing directory: %v, want ENOENT", err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		256 << 20: "256.0 MiB", 1 << 30: "1.0 GiB", 5 << 40: "5.0 TiB", 3 << 50: "3072.0 TiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
