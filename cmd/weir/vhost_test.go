package main

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestVhostCommands adds a vhost, uses it over AMQP beside "/" with the same
// queue and exchange names, lists it and removes it with what it holds.
func TestVhostCommands(t *testing.T) {
	p := startWeir(t, cleanEnv(), "serve", "--data", t.TempDir(), "--http-addr", "127.0.0.1:0",
		"--amqp-addr", "127.0.0.1:0", "--kafka-addr=", "--mqtt-addr=", "--log-level", "warn")
	amqpAddr := p.waitForLine(t, "amqp listening on ")
	server := "--server=" + p.waitForLine(t, "http listening on ")
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exit(t); code != 0 {
			t.Errorf("server exit code %d; stderr:\n%s", code, &p.stderr)
		}
	})
	run := func(args ...string) (int, string, string) { return weirCmd(t, "", nil, append(args, server)...) }
	url := func(vhost string) string { return "amqp://guest:guest@" + amqpAddr + "/" + vhost }

	var ae *amqp091.Error
	if _, err := amqp091.Dial(url("shop")); !errors.As(err, &ae) || ae.Code != amqp091.NotAllowed {
		t.Fatalf("dial an unknown vhost: %v, want 530 NOT_ALLOWED", err)
	}
	code, out, errOut := run("vhost", "add", "shop")
	expect(t, code, out, errOut, 0, []string{"added vhost shop"}, nil)
	code, out, errOut = run("vhost", "add", "/")
	expect(t, code, out, errOut, 2, nil, []string{"always exists"})

	// The same names in both vhosts, kept apart.
	publish := func(vhost, body string) {
		t.Helper()
		conn, err := amqp091.Dial(url(vhost))
		if err != nil {
			t.Fatalf("dial vhost %q: %v", vhost, err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.ExchangeDeclare("events", "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("orders", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind("orders", "", "events", false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		for _, x := range []string{"events", "amq.fanout"} {
			if x == "amq.fanout" {
				if err := ch.QueueBind("orders", "", x, false, nil); err != nil {
					t.Fatal(err)
				}
			}
			dc, err := ch.PublishWithDeferredConfirm(x, "", true, false, amqp091.Publishing{Body: []byte(body)})
			if err != nil {
				t.Fatal(err)
			}
			if !dc.Wait() {
				t.Fatalf("publish through %s in vhost %q not confirmed", x, vhost)
			}
		}
		q, err := ch.QueueDeclarePassive("orders", true, false, false, false, nil)
		if err != nil || q.Messages != 2 {
			t.Fatalf("vhost %q: queue orders holds %d messages (%v), want its own 2", vhost, q.Messages, err)
		}
		d, ok, err := ch.Get("orders", true)
		if err != nil || !ok || string(d.Body) != body {
			t.Fatalf("vhost %q: get %q ok=%v err=%v, want %q", vhost, d.Body, ok, err, body)
		}
	}
	publish("shop", "in shop")
	publish("/", "in root")
	// vhost "" is "/".
	if conn, err := amqp091.Dial("amqp://guest:guest@" + amqpAddr); err != nil {
		t.Errorf("dial without a vhost: %v", err)
	} else {
		conn.Close()
	}

	code, out, errOut = run("vhost", "ls")
	expect(t, code, out, errOut, 0, []string{"VHOST", "shop"}, nil)
	code, out, errOut = run("stream", "ls")
	expect(t, code, out, errOut, 0, []string{"_amqp.shop.orders", "orders"}, nil)

	code, out, errOut = run("vhost", "rm", "shop")
	expect(t, code, out, errOut, 0, []string{"removed vhost shop (1 queues and streams, 6 exchanges)"}, nil)
	code, out, errOut = run("vhost", "rm", "shop")
	expect(t, code, out, errOut, 1, nil, []string{`no vhost "shop"`})
	if _, err := amqp091.Dial(url("shop")); !errors.As(err, &ae) || ae.Code != amqp091.NotAllowed {
		t.Errorf("dial a removed vhost: %v, want 530 NOT_ALLOWED", err)
	}
	code, out, errOut = run("stream", "ls")
	expect(t, code, out, errOut, 0, []string{"orders"}, nil)
	if strings.Contains(out, "_amqp.shop.") {
		t.Errorf("streams of the removed vhost are left:\n%s", out)
	}
	// "/" kept its queue and message.
	conn, err := amqp091.Dial(url(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive("orders", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue orders of / holds %d messages, want 1", q.Messages)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUserVhosts limits a user to some vhosts with the users file.
func TestUserVhosts(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.yaml")
	code, out, errOut := weirCmd(t, "secret\n", nil, "user", "add", "alice", "--password-stdin", "--users", users)
	expect(t, code, out, errOut, 0, nil, nil)
	weirCmd(t, "secret\n", nil, "user", "add", "bob", "--password-stdin", "--users", users)
	code, out, errOut = weirCmd(t, "", nil, "user", "vhosts", "alice", "--users", users)
	expect(t, code, out, errOut, 0, []string{"alice may open every vhost"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "user", "vhosts", "alice", "shop", "--users", users)
	expect(t, code, out, errOut, 0, []string{"alice may open: shop"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "user", "vhosts", "alice", "--users", users)
	expect(t, code, out, errOut, 0, []string{"alice may open: shop"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "user", "vhosts", "nobody", "--users", users)
	expect(t, code, out, errOut, 1, nil, []string{"no such user"})
	code, out, errOut = weirCmd(t, "", nil, "user", "vhosts", "alice", "x", "--all", "--users", users)
	expect(t, code, out, errOut, 2, nil, []string{"exclude each other"})
	code, token, errOut := weirCmd(t, "", nil, "user", "token", "bob", "--users", users)
	expect(t, code, token, errOut, 0, nil, nil)

	p := startWeir(t, cleanEnv(), "serve", "--data", t.TempDir(), "--http-addr", "127.0.0.1:0", "--users", users,
		"--amqp-addr", "127.0.0.1:0", "--kafka-addr=", "--mqtt-addr=", "--log-level", "warn")
	amqpAddr := p.waitForLine(t, "amqp listening on ")
	httpAddr := p.waitForLine(t, "http listening on ")
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.exit(t)
	})
	code, out, errOut = weirCmd(t, "", nil, "vhost", "add", "shop", "--server", httpAddr, "--token", strings.TrimSpace(token))
	expect(t, code, out, errOut, 0, []string{"added vhost shop"}, nil)
	dial := func(user, vhost string) error {
		conn, err := amqp091.Dial("amqp://" + user + ":secret@" + amqpAddr + "/" + vhost)
		if err == nil {
			conn.Close()
		}
		return err
	}
	var ae *amqp091.Error
	if err := dial("alice", ""); !errors.As(err, &ae) || ae.Code != amqp091.NotAllowed || !strings.Contains(ae.Reason, "refused for user 'alice'") {
		t.Errorf("alice opens /: %v, want 530 NOT_ALLOWED", err)
	}
	if err := dial("alice", "shop"); err != nil {
		t.Errorf("alice opens shop: %v", err)
	}
	for _, v := range []string{"", "shop"} {
		if err := dial("bob", v); err != nil {
			t.Errorf("bob (no limit) opens %q: %v", v, err)
		}
	}
}
