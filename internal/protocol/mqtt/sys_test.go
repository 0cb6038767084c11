package mqtt

import (
	"strconv"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
)

// TestSys: $SYS topics are published periodically and retained (in
// memory); "#" does not match them, "$SYS/#" does; clients cannot publish
// to them.
func TestSys(t *testing.T) {
	n := startNodeWith(t, Config{SysInterval: 50 * time.Millisecond, Version: "1.2.3"})
	all, allMsgs, _ := pahoClient(t, n.addr, "all", true)
	wait(t, all.Subscribe("#", 0, nil))
	sys, sysMsgs, _ := pahoClient(t, n.addr, "sys", true)
	wait(t, sys.Subscribe("$SYS/#", 0, nil))

	// The retained values come at once, with RETAIN set.
	seen := map[string]string{}
	deadline := time.After(10 * time.Second)
	for len(seen) < 14 {
		select {
		case m := <-sysMsgs:
			if !strings.HasPrefix(m.topic, "$SYS/broker/") {
				t.Fatalf("$SYS/# got %q", m.topic)
			}
			if _, ok := seen[m.topic]; !ok && !m.retained {
				t.Errorf("first %s without RETAIN", m.topic)
			}
			seen[m.topic] = m.payload
		case <-deadline:
			t.Fatalf("$SYS topics seen: %v", seen)
		}
	}
	if seen["$SYS/broker/version"] != "weir 1.2.3" {
		t.Errorf("version %q", seen["$SYS/broker/version"])
	}
	if !strings.HasSuffix(seen["$SYS/broker/uptime"], " seconds") {
		t.Errorf("uptime %q", seen["$SYS/broker/uptime"])
	}

	// Updates follow what happens: a third client and a publish.
	pub, _, _ := pahoClient(t, n.addr, "pub", true)
	wait(t, pub.Publish("plain/topic", 1, false, "x"))
	if m := recvMsg(t, allMsgs); m.topic != "plain/topic" {
		t.Fatalf("# got %+v", m)
	}
	want := map[string]func(string) bool{
		"$SYS/broker/clients/connected":         func(v string) bool { return v == "3" },
		"$SYS/broker/clients/maximum":           func(v string) bool { return v == "3" },
		"$SYS/broker/publish/messages/received": func(v string) bool { n, _ := strconv.Atoi(v); return n >= 1 },
		"$SYS/broker/publish/messages/sent":     func(v string) bool { n, _ := strconv.Atoi(v); return n >= 1 },
		"$SYS/broker/subscriptions/count":       func(v string) bool { return v == "2" },
		"$SYS/broker/bytes/received":            func(v string) bool { n, _ := strconv.Atoi(v); return n > 0 },
		"$SYS/broker/retained messages/count":   func(v string) bool { return v == "0" },
		"$SYS/broker/clients/disconnected":      func(v string) bool { return v == "0" },
	}
	for topic, ok := range want { // only changes are published again
		if ok(seen[topic]) {
			delete(want, topic)
		}
	}
	deadline = time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case m := <-sysMsgs:
			if m.retained {
				t.Errorf("live update %s with RETAIN", m.topic)
			}
			seen[m.topic] = m.payload
			if ok := want[m.topic]; ok != nil && ok(m.payload) {
				delete(want, m.topic)
			}
		case <-deadline:
			t.Fatalf("updates not seen: %d left (%v)", len(want), seen)
		}
	}
	// "#" got none of them (spec 4.7.2).
	noMsg(t, allMsgs, 200*time.Millisecond)

	// Publishing to $SYS: MQTT 5 is told it is not authorized; nothing
	// changes.
	c5 := paho5Client(t, n.addr, "intruder", func(*paho5.Publish) {})
	resp, err := c5.Publish(t.Context(), &paho5.Publish{Topic: "$SYS/broker/version", QoS: 1, Retain: true, Payload: []byte("fake")})
	if err == nil && (resp == nil || resp.ReasonCode != reasonNotAuthorized) {
		t.Errorf("publish to $SYS: %+v, want reason 0x87", resp)
	}
	late, lateMsgs, _ := pahoClient(t, n.addr, "late", true)
	wait(t, late.Subscribe("$SYS/broker/version", 0, nil))
	if m := recvMsg(t, lateMsgs); m.payload != "weir 1.2.3" || !m.retained {
		t.Errorf("version after a publish to it: %+v", m)
	}
}
