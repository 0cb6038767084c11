package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseWorkloadDefaults(t *testing.T) {
	w := mustWorkload(t, `
name: d
messageSize: 100
producersPerTopic: 1
producerRate: max
duration: 90
`)
	if w.Topics != 1 || w.PartitionsPerTopic != 1 || *w.RandomBytesRatio != 1 || w.KeyDistributor != KeyNone ||
		w.SubscriptionType != SubscriptionGroup || w.MaxOutstanding != 1000 || w.Prefetch != 100 {
		t.Errorf("defaults: %+v", w)
	}
	if !w.ProducerRate.Max() || time.Duration(w.Duration) != 90*time.Second {
		t.Errorf("rate %v, duration %v", w.ProducerRate, time.Duration(w.Duration))
	}
}

func TestParseWorkloadOverrides(t *testing.T) {
	w := mustWorkload(t, smallWorkload, "duration=5s", "producerRate=max", "backlogRecords=100", "topics=7")
	if time.Duration(w.Duration) != 5*time.Second || !w.ProducerRate.Max() || w.BacklogRecords != 100 || w.Topics != 7 {
		t.Errorf("overrides not applied: %+v", w)
	}
}

// TestParseWorkloadErrors checks that each bad field is named.
func TestParseWorkloadErrors(t *testing.T) {
	for _, tc := range []struct {
		change []string
		field  string
	}{
		{[]string{"name="}, "name"},
		{[]string{"topics=-1"}, "topics"},
		{[]string{"partitionsPerTopic=-1"}, "partitionsPerTopic"},
		{[]string{"messageSize=4"}, "messageSize"},
		{[]string{"randomBytesRatio=1.5"}, "randomBytesRatio"},
		{[]string{"keyDistributor=RANDOM"}, "keyDistributor"},
		{[]string{"subscriptionType=queue"}, "subscriptionType"},
		{[]string{"subscriptionsPerTopic=0"}, "consumerPerSubscription"},
		{[]string{"producers=3"}, "producers"},
		{[]string{"producersPerTopic=0"}, "producersPerTopic"},
		{[]string{"producerRate=fast"}, "producerRate"},
		{[]string{"producerRate=-5"}, "producerRate"},
		{[]string{"duration=soon"}, "soon"},
		{[]string{"duration=0"}, "duration"},
		{[]string{"maxOutstanding=-1"}, "maxOutstanding"},
		{[]string{"backlogRecords=10", "consumerPerSubscription=0"}, "backlogRecords"},
		{[]string{"partitions=3"}, "partitions"}, // unknown field
		{[]string{"nonsense"}, "field=value"},
		{[]string{"topics=many"}, "topics: cannot unmarshal"},
		{[]string{"messageSize=big"}, "messageSize: cannot unmarshal"},
	} {
		_, err := ParseWorkload([]byte(smallWorkload), tc.change...)
		if err == nil || !errors.Is(err, ErrWorkload) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%v: error %v, want ErrWorkload naming %q", tc.change, err, tc.field)
		}
	}
	if _, err := ParseWorkload([]byte("- a\n- b\n")); !errors.Is(err, ErrWorkload) {
		t.Errorf("a list: %v", err)
	}
	if _, err := ParseWorkload(nil); !errors.Is(err, ErrWorkload) {
		t.Errorf("empty: %v", err)
	}
}

// TestShippedWorkloads parses every workload of bench/workloads.
func TestShippedWorkloads(t *testing.T) {
	files, err := filepath.Glob("../../bench/workloads/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no workloads found: %v", err)
	}
	for _, f := range files {
		w, err := LoadWorkload(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); w.Name != want {
			t.Errorf("%s: name %q, want %q (the compare script names results by file)", f, w.Name, want)
		}
	}
}

func TestLoadWorkloadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(path, []byte("name: x\nmessageSize: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadWorkload(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "messageSize") {
		t.Errorf("error %v: want the path and the field", err)
	}
}

func TestProducerTopics(t *testing.T) {
	w := mustWorkload(t, smallWorkload, "topics=5", "producersPerTopic=0", "producers=2")
	if got := w.producerTopics(0); len(got) != 3 || got[2] != 4 {
		t.Errorf("producer 0: %v, want [0 2 4]", got)
	}
	if got := w.producerTopics(1); len(got) != 2 || got[1] != 3 {
		t.Errorf("producer 1: %v, want [1 3]", got)
	}
	if w.ProducerCount() != 2 {
		t.Errorf("count %d", w.ProducerCount())
	}
}
