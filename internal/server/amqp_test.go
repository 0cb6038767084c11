package server

import (
	"errors"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestAMQPListener checks that the AMQP front end listens on the configured
// address, and that Shutdown closes its connections with
// CONNECTION_FORCED.
func TestAMQPListener(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr, cfg.KafkaAddr = "", ""
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		var ae *amqp091.Error
		if e == nil || !errors.As(e, &ae) || ae.Code != amqp091.ConnectionForced {
			t.Errorf("connection closed with %v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after Shutdown")
	}
}
