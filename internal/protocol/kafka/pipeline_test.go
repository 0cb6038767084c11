package kafka_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/server"
)

// fsyncCount reads weir_fsync_seconds_count from the node's /metrics.
func fsyncCount(t *testing.T, httpAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^weir_fsync_seconds_count (\d+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestPipelinedProduce sends an idempotent producer's produce requests for
// one partition back to back on one connection, as clients with several
// requests in flight do, under fsync always: they are answered in request
// order, their batches stored in that order, and they share flushes rather
// than taking one each.
func TestPipelinedProduce(t *testing.T) {
	w := startWeir(t, func(c *server.Config) {
		c.FSync = server.FSyncAlways
		c.HTTPAddr = "127.0.0.1:0"
	})
	ctx := testContext(t)
	cl := w.client(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "pipe"); err != nil {
		t.Fatal(err)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	initResp, err := init.RequestWith(ctx, cl)
	if err != nil || initResp.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v, %+v", err, initResp)
	}
	pid, epoch := initResp.ProducerID, initResp.ProducerEpoch
	httpAddr := w.srv.Addr("http")
	before := fsyncCount(t, httpAddr)

	nc, err := net.Dial("tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	const requests, perBatch = 40, 3
	var out []byte
	for i := range requests {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 7, -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "pipe"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch(t, pid, epoch, int32(i*perBatch), perBatch)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		body := binary.BigEndian.AppendUint16(nil, 0) // Produce
		body = binary.BigEndian.AppendUint16(body, 7)
		body = binary.BigEndian.AppendUint32(body, uint32(100+i))
		body = binary.BigEndian.AppendUint16(body, 0xffff) // no client id
		body = req.AppendTo(body)
		out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	for i := range requests {
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		frame := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(r, frame); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if corr := binary.BigEndian.Uint32(frame); corr != uint32(100+i) {
			t.Fatalf("response %d has correlation id %d, want %d: answered out of order", i, corr, 100+i)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 7
		if err := resp.ReadFrom(frame[4:]); err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(i*perBatch) {
			t.Fatalf("request %d: error %d, base offset %d; want stored at %d", i, p.ErrorCode, p.BaseOffset, i*perBatch)
		}
	}
	flushes := fsyncCount(t, httpAddr) - before
	t.Logf("%d flushes for %d pipelined requests", flushes, requests)
	if flushes >= requests {
		t.Errorf("%d flushes for %d pipelined requests: each waited for its own", flushes, requests)
	}
}
