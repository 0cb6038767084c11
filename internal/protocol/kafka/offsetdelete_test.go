package kafka_test

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestOffsetDelete drives kadm.DeleteOffsets: while a member consumes one
// topic, that topic's offsets are refused (GROUP_SUBSCRIBED_TO_TOPIC) and
// another topic's are deleted; once the member left, the first topic's
// go too; an unknown group answers GROUP_ID_NOT_FOUND.
func TestOffsetDelete(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	adm := w.admin(t)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "od-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "od-b"); err != nil {
		t.Fatal(err)
	}
	prod := w.client(t)
	produceValues(t, prod, "od-a", 0, 10)
	produceValues(t, prod, "od-b", 0, 10)
	var commit kadm.Offsets
	commit.AddOffset("od-a", 0, 1, -1)
	commit.AddOffset("od-a", 1, 1, -1)
	commit.AddOffset("od-b", 0, 3, -1)
	if r, err := adm.CommitOffsets(ctx, "od-g", commit); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	seen := &seenSet{seen: make(map[int]int)}
	m := startMember(t, w, "od-g", "od-a", seen)
	waitFor(t, "the member to consume", func() bool { return seen.count() >= 8 }) // from the committed offsets

	del, err := adm.DeleteOffsets(ctx, "od-g", kadm.TopicsSet{"od-a": {0: {}, 1: {}}, "od-b": {0: {}}, "od-none": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		if err, _ := del.Lookup("od-a", p); !errors.Is(err, kerr.GroupSubscribedToTopic) {
			t.Errorf("od-a/%d while consumed: %v, want GROUP_SUBSCRIBED_TO_TOPIC", p, err)
		}
	}
	if err, ok := del.Lookup("od-b", 0); !ok || err != nil {
		t.Errorf("od-b/0: %v %v", ok, err)
	}
	if err, _ := del.Lookup("od-none", 0); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", err)
	}
	fetched, err := adm.FetchOffsets(ctx, "od-g")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fetched.Lookup("od-b", 0); ok {
		t.Errorf("od-b/0 still committed: %+v", fetched)
	}
	if o, ok := fetched.Lookup("od-a", 0); !ok || o.At < 1 {
		t.Errorf("od-a/0 lost: %+v %v", o, ok)
	}

	m.stop() // leaves the group
	del, err = adm.DeleteOffsets(ctx, "od-g", kadm.TopicsSet{"od-a": {0: {}, 1: {}}})
	if err != nil || del.Error() != nil {
		t.Fatalf("deleting od-a once the group is empty: %v %v", err, del.Error())
	}
	if fetched, err := adm.FetchOffsets(ctx, "od-g"); err != nil || len(fetched) != 0 {
		t.Errorf("offsets left: %+v %v", fetched, err)
	}
	if _, err := adm.DeleteOffsets(ctx, "od-nobody", kadm.TopicsSet{"od-a": {0: {}}}); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("unknown group: %v, want GROUP_ID_NOT_FOUND", err)
	}
}
