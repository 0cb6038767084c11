package main

import (
	"strings"
	"testing"
)

func TestRequestRespond(t *testing.T) {
	addr := startServer(t)
	server := "--server=" + addr
	run := func(args ...string) (int, string, string) {
		return weirCmd(t, "", nil, append(args, server)...)
	}
	code, out, errOut := run("queue", "create", "upper")
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = run("exchange", "declare", "rpc", "--type", "direct")
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = run("bind", "rpc", "upper", "--key", "upper")
	expect(t, code, out, errOut, 0, nil, nil)

	// Nobody answers yet.
	code, out, errOut = run("request", "upper", "hello", "--timeout", "300ms")
	expect(t, code, out, errOut, 1, nil, []string{"weir request:", "no reply within 300ms"})

	type result struct {
		code     int
		out, err string
	}
	responder := make(chan result, 1)
	go func() {
		code, out, errOut := run("respond", "upper", "--exec", "tr a-z A-Z", "--count", "2")
		responder <- result{code, out, errOut}
	}()
	// The unanswered request expired with its timeout: it is dropped, not
	// answered.
	code, out, errOut = run("request", "upper", "world", "--timeout", "20s")
	expect(t, code, out, errOut, 0, []string{"WORLD"}, nil)
	code, out, errOut = run("request", "--exchange", "rpc", "--routing-key", "upper", "via exchange", "--format", "json", "--timeout", "20s")
	expect(t, code, out, errOut, 0, []string{`"value":"VIA EXCHANGE"`, `"key":"correlation-id"`}, nil)
	r := <-responder
	expect(t, r.code, r.out, r.err, 0, []string{"world\nvia exchange\n"}, nil)
	if strings.Contains(r.out, "hello") {
		t.Errorf("the responder answered an expired request:\n%s", r.out)
	}

	code, out, errOut = run("request", "--exchange", "rpc", "--routing-key", "nobody", "x")
	expect(t, code, out, errOut, 1, nil, []string{"routed the request to no stream"})
	code, out, errOut = run("request", "nope", "x")
	expect(t, code, out, errOut, 1, nil, []string{"not found"})
	for _, bad := range [][]string{
		{"request", "upper"},
		{"request", "--exchange", "rpc", "upper", "x"},
		{"request", "upper", "x", "--routing-key", "k"},
		{"request", "upper", "x", "--timeout", "0s"},
		{"respond", "upper"},
		{"respond", "upper", "x", "--exec", "cat"},
	} {
		code, out, errOut = run(bad...)
		if code != 2 || !strings.Contains(errOut, "weir "+bad[0]+":") {
			t.Errorf("weir %q: exit %d, stderr %q; want a usage error", bad, code, errOut)
		}
	}
}
