package bench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// smokeWorkload is a few seconds of light load.
const smokeWorkload = `
name: smoke
topics: 2
partitionsPerTopic: 2
messageSize: 256
randomBytesRatio: 0.5
keyDistributor: KEY_ROUND_ROBIN
producersPerTopic: 1
producerRate: 400
subscriptionsPerTopic: 2
consumerPerSubscription: 2
warmup: 500ms
duration: 2s
`

// TestSmokeDrivers runs a short workload through every driver against a
// real server: Weir (native, Kafka and AMQP listeners) in the process,
// nats-server and rabbitmq-server as child processes. It checks that
// every record published arrived at every subscription, and that latencies
// and the per-second series were recorded.
func TestSmokeDrivers(t *testing.T) {
	srv := startWeir(t)
	// The other servers start while Weir's runs go; a server that does not
	// start fails its runs.
	var natsURL, rabbitURL string
	var natsErr, rabbitErr error
	var wg sync.WaitGroup
	wg.Go(func() { natsURL, natsErr = startNATS(t) })
	wg.Go(func() { rabbitURL, rabbitErr = startRabbitMQ(t) })
	started := func(err *error) func() error {
		return func() error { wg.Wait(); return *err }
	}
	weirUp := func() error { return nil }
	for _, tc := range []struct {
		name, driver string
		url          func() string
		up           func() error
		overrides    []string
		opts         map[string]string
	}{
		{name: "weir", driver: "weir", up: weirUp, url: func() string { return srv.Addr("http") }},
		{name: "weir-shared", driver: "weir", up: weirUp, url: func() string { return srv.Addr("http") }, overrides: []string{"subscriptionType=shared"}},
		// The same bounded queue as amqp-weir-bounded, over the SDK.
		{name: "weir-shared-bounded", driver: "weir", up: weirUp, url: func() string { return srv.Addr("http") }, overrides: []string{"subscriptionType=shared"}, opts: map[string]string{"max-length": "20", "overflow": "block"}},
		{name: "weir-backlog", driver: "weir", up: weirUp, url: func() string { return srv.Addr("http") }, overrides: []string{"backlogRecords=2000"}},
		{name: "kafka-weir", driver: "kafka", up: weirUp, url: func() string { return srv.Addr("kafka") }},
		{name: "amqp-weir", driver: "amqp", up: weirUp, url: func() string { return "amqp://guest:guest@" + srv.Addr("amqp") + "/" }, overrides: []string{"subscriptionType=shared"}},
		// A queue bounded at 20 messages that holds its publishers there
		// (Weir's x-overflow block): nothing is dropped or refused.
		{name: "amqp-weir-bounded", driver: "amqp", up: weirUp, url: func() string { return "amqp://guest:guest@" + srv.Addr("amqp") + "/" }, overrides: []string{"subscriptionType=shared"}, opts: map[string]string{"max-length": "20", "overflow": "block"}},
		{name: "nats", driver: "nats", up: started(&natsErr), url: func() string { return natsURL }},
		{name: "nats-shared", driver: "nats", up: started(&natsErr), url: func() string { return natsURL }, overrides: []string{"subscriptionType=shared", "subscriptionsPerTopic=1"}},
		{name: "amqp-rabbitmq", driver: "amqp", up: started(&rabbitErr), url: func() string { return rabbitURL }},
		{name: "amqp-rabbitmq-quorum", driver: "amqp", up: started(&rabbitErr), url: func() string { return rabbitURL }, overrides: []string{"subscriptionType=shared"}, opts: map[string]string{"queue-type": "quorum"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.up(); err != nil {
				t.Fatal(err)
			}
			w := mustWorkload(t, smokeWorkload, tc.overrides...)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			d, err := Open(ctx, tc.driver, DriverConfig{URL: tc.url(), Options: tc.opts})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			res, err := Run(ctx, d, w, Options{Driver: tc.driver, URL: tc.url(), Label: tc.name, CatchUp: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			checkSmoke(t, w, res)
		})
	}
}

func checkSmoke(t *testing.T, w *Workload, res *Result) {
	t.Helper()
	t.Log(res.Summary())
	if res.Publish.Records == 0 || res.Publish.Errors != 0 {
		t.Errorf("published %d records with %d errors", res.Publish.Records, res.Publish.Errors)
	}
	if res.Unconsumed != 0 {
		t.Errorf("%d records published were not consumed", res.Unconsumed)
	}
	if res.PublishLatency == nil || res.PublishLatency.Count == 0 {
		t.Error("no publish latency recorded")
	}
	// Both histograms take the records sent from the end of the warm-up on
	// (Publish.Records counts acknowledgements in the window instead, which
	// can include records sent during the warm-up): each such record is
	// delivered once per subscription.
	if w.BacklogRecords == 0 && res.PublishLatency != nil &&
		(res.EndToEndLatency == nil || res.EndToEndLatency.Count < res.PublishLatency.Count*int64(w.SubscriptionsPerTopic)) {
		t.Errorf("end-to-end latency %+v: want a sample per record sent after the warm-up and subscription (%d × %d)",
			res.EndToEndLatency, res.PublishLatency.Count, w.SubscriptionsPerTopic)
	}
	if w.BacklogRecords > 0 && (res.Backlog == nil || !res.Backlog.DrainedComplete || res.Backlog.Records != w.BacklogRecords) {
		t.Errorf("backlog %+v: want %d records drained", res.Backlog, w.BacklogRecords)
	}
	if len(res.Series) == 0 {
		t.Error("no per-second samples")
	}
}
