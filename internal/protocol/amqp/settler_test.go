package amqp

import (
	"reflect"
	"testing"

	"github.com/weirmq/weir/internal/broker"
)

func TestMergeSettles(t *testing.T) {
	a := brokerConsumer{"q1", "c1"}
	b := brokerConsumer{"q2", "c2"}
	ref := func(offs ...int64) []broker.DeliveryRef {
		var rs []broker.DeliveryRef
		for _, o := range offs {
			rs = append(rs, broker.DeliveryRef{Offset: o})
		}
		return rs
	}
	got := mergeSettles([]brokerSettle{
		{a, settleAck, ref(1)},
		{b, settleAck, ref(7)},
		{a, settleRequeue, ref(2)},
		{a, settleAck, ref(3, 4)},
		{b, settleAck, ref(8)},
		{a, settleAck, ref(5)},
	})
	want := []brokerSettle{
		{a, settleAck, ref(1, 3, 4, 5)},
		{b, settleAck, ref(7, 8)},
		{a, settleRequeue, ref(2)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mergeSettles:\n got %+v\nwant %+v", got, want)
	}
}
