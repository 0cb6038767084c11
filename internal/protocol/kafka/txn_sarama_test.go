package kafka_test

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestTransactionsSarama: sarama's transactional producer commits one
// transaction and aborts another; sarama's read-committed consumer gets
// the committed records only, its read-uncommitted consumer all of them.
func TestTransactionsSarama(t *testing.T) {
	w := startWeir(t)
	if _, err := w.admin(t).CreateTopic(testContext(t), 1, 1, nil, "txs"); err != nil {
		t.Fatal(err)
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Transaction.ID = "txs-producer"
	cfg.Net.MaxOpenRequests = 1
	prod, err := sarama.NewSyncProducer([]string{w.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for _, commit := range []bool{true, false} {
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		prefix := map[bool]string{true: "c", false: "a"}[commit]
		for i := range 3 {
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "txs", Value: sarama.StringEncoder(prefix + "-" + string(rune('0'+i)))}); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = prod.CommitTxn()
		} else {
			err = prod.AbortTxn()
		}
		if err != nil {
			t.Fatalf("end transaction (commit %v): %v", commit, err)
		}
	}
	read := func(level sarama.IsolationLevel) map[string]int {
		ccfg := sarama.NewConfig()
		ccfg.Version = sarama.V2_8_0_0
		ccfg.Consumer.IsolationLevel = level
		ccfg.Consumer.MaxWaitTime = 100 * time.Millisecond
		cons, err := sarama.NewConsumer([]string{w.addr}, ccfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		pc, err := cons.ConsumePartition("txs", 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var values []string
		for {
			select {
			case m := <-pc.Messages():
				values = append(values, string(m.Value))
				continue
			case <-time.After(time.Second):
			}
			return countPrefixes(values)
		}
	}
	if got := read(sarama.ReadCommitted); got["c"] != 3 || got["a"] != 0 {
		t.Errorf("sarama read committed: %v", got)
	}
	if got := read(sarama.ReadUncommitted); got["c"] != 3 || got["a"] != 3 {
		t.Errorf("sarama read uncommitted: %v", got)
	}
}
