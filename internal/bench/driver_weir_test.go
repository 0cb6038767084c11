package bench

import (
	"testing"

	weir "github.com/weirmq/weir/client"
)

// Bad driver options are refused before anything is dialled, naming the
// option.
func TestWeirDriverOptions(t *testing.T) {
	checkBadOptions(t, "weir", "127.0.0.1:1", map[string]string{
		"linger=soon":                     `option linger`,
		"max-length=0":                    `option max-length "0"`,
		"max-length=ten":                  `option max-length "ten"`,
		"overflow=block":                  `option overflow "block" needs max-length`,
		"max-length=5,overflow=wait":      `option overflow "wait"`,
		"max-length=5,overflow=drop-head": `option overflow "drop-head"`,
		"max-lenght=5":                    `unknown option "max-lenght"`,
	})
}

// The bound reaches the server: a queue and a shared subscription created
// by the driver with max-length and overflow are bounded there.
func TestWeirDriverCreatesBoundedSubscriptions(t *testing.T) {
	srv := startWeir(t)
	d, err := Open(t.Context(), "weir", DriverConfig{URL: srv.Addr("http"),
		Options: map[string]string{"max-length": "20", "overflow": "block"}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	topics := []Topic{
		{Name: "bounded-queue", Partitions: 1, Subscriptions: []string{"s"}, Shared: true},
		{Name: "bounded-stream", Partitions: 2, Subscriptions: []string{"a", "b"}, Shared: true},
	}
	if err := d.Create(t.Context(), topics); err != nil {
		t.Fatal(err)
	}
	defer d.Delete(t.Context(), topics)
	c, err := weir.Dial(t.Context(), srv.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, sub := range [][2]string{{"bounded-queue", ""}, {"bounded-stream", "a"}, {"bounded-stream", "b"}} {
		info, err := c.DescribeSubscription(t.Context(), sub[0], sub[1])
		if err != nil {
			t.Fatalf("%v: %v", sub, err)
		}
		if info.Config.MaxLength != 20 || info.Config.Overflow != weir.OverflowBlock {
			t.Errorf("%v: max length %d, overflow %q; want 20 and %q", sub, info.Config.MaxLength, info.Config.Overflow, weir.OverflowBlock)
		}
	}
}
