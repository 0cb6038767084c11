package bench

import (
	"strings"
	"testing"

	"github.com/weirmq/weir/internal/broker"
	amqpproto "github.com/weirmq/weir/internal/protocol/amqp"
)

// Bad driver options are refused before anything is dialled, naming the
// option.
func TestAMQPDriverOptions(t *testing.T) {
	checkBadOptions(t, "amqp", "amqp://127.0.0.1:1/", map[string]string{
		"queue-type=stream":          `option queue-type "stream"`,
		"max-length=0":               `option max-length "0"`,
		"max-length=ten":             `option max-length "ten"`,
		"overflow=block":             `option overflow "block" needs max-length`,
		"max-length=5,overflow=wait": `option overflow "wait"`,
		"max-lenght=5":               `unknown option "max-lenght"`,
	})
}

// checkBadOptions opens driver at url (port 1: nothing listens there, so
// an option checked after dialling fails with a dial error instead) with
// each set of options ("k=v,k=v"), which must fail with an error that
// contains the set's text.
func checkBadOptions(t *testing.T, driver, url string, cases map[string]string) {
	t.Helper()
	for opts, want := range cases {
		o := map[string]string{}
		for _, kv := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(kv, "=")
			o[k] = v
		}
		_, err := Open(t.Context(), driver, DriverConfig{URL: url, Options: o})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("options %s: error %v, want one with %s", opts, err, want)
		}
	}
}

// The queue options reach the server: a queue declared by the driver with
// max-length and overflow is bounded there, and holds its publishers.
func TestAMQPDriverDeclaresBoundedQueue(t *testing.T) {
	srv := startWeir(t)
	d, err := Open(t.Context(), "amqp", DriverConfig{URL: "amqp://guest:guest@" + srv.Addr("amqp") + "/",
		Options: map[string]string{"max-length": "20", "overflow": "block"}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	topic := Topic{Name: "bounded", Partitions: 1, Subscriptions: []string{"s"}, Shared: true}
	if err := d.Create(t.Context(), []Topic{topic}); err != nil {
		t.Fatal(err)
	}
	defer d.Delete(t.Context(), []Topic{topic})
	name := amqpproto.BrokerName("/", "bounded")
	info, err := srv.Broker().DescribeSubscription(name, name)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxLength != 20 || info.Config.Overflow != broker.OverflowBlock {
		t.Errorf("the queue's bound: max length %d, overflow %q; want 20 and %q", info.Config.MaxLength, info.Config.Overflow, broker.OverflowBlock)
	}
}
