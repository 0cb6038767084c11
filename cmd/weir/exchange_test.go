package main

import (
	"strings"
	"testing"
)

func TestExchangeCommands(t *testing.T) {
	addr := startServer(t)
	server := "--server=" + addr
	run := func(stdin string, args ...string) (int, string, string) {
		return weirCmd(t, stdin, nil, append(args, server)...)
	}
	for _, s := range []string{"eu", "all", "refunds", "lost"} {
		code, out, errOut := run("", "stream", "create", s)
		expect(t, code, out, errOut, 0, nil, nil)
	}

	code, out, errOut := run("", "exchange", "declare", "orders", "--type", "topic", "--alternate", "fallback")
	expect(t, code, out, errOut, 0, []string{"declared topic exchange orders; unmatched records go to fallback"}, nil)
	code, out, errOut = run("", "exchange", "declare", "orders", "--type", "topic", "--alternate", "fallback")
	expect(t, code, out, errOut, 0, []string{"declared topic exchange orders"}, nil)
	code, out, errOut = run("", "exchange", "declare", "orders", "--type", "direct")
	expect(t, code, out, errOut, 1, nil, []string{"weir exchange declare:", "already_exists", "topic exchange"})
	code, out, errOut = run("", "exchange", "declare", "fallback", "--type", "fanout")
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = run("", "exchange", "declare", "hdr", "--type", "headers")
	expect(t, code, out, errOut, 0, nil, nil)

	code, out, errOut = run("", "bind", "orders", "eu", "--key", "order.eu.*")
	expect(t, code, out, errOut, 0, []string{"bound orders: order.eu.* -> eu"}, nil)
	code, out, errOut = run("", "bind", "orders", "all", "--key", "order.#")
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = run("", "bind", "orders", "hdr", "--to-exchange", "--key", "order.#")
	expect(t, code, out, errOut, 0, []string{"bound orders: order.# -> exchange:hdr"}, nil)
	code, out, errOut = run("", "bind", "hdr", "refunds", "--arg", "kind=refund", "--arg", "x-match=any")
	expect(t, code, out, errOut, 0, []string{"{kind=refund,x-match=any} -> refunds"}, nil)
	code, out, errOut = run("", "bind", "fallback", "lost")
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = run("", "bind", "orders", "nowhere", "--key", "a")
	expect(t, code, out, errOut, 1, nil, []string{"weir bind:", "not found"})
	code, out, errOut = run("", "bind", "orders", "eu", "--key", "a.#x")
	expect(t, code, out, errOut, 1, nil, []string{"weir bind:", "invalid argument"})

	code, out, errOut = run("", "exchange", "ls")
	expect(t, code, out, errOut, 0, []string{"NAME", "TYPE", "BINDINGS", "UNROUTABLE",
		"order.eu.* -> eu, order.# -> all, order.# -> exchange:hdr", "fanout", "-> lost"}, nil)

	// Through the topic exchange to two streams, and through the headers
	// exchange bound to it.
	code, out, errOut = run("", "pub", "--exchange", "orders", "--routing-key", "order.eu.paid", "p1")
	expect(t, code, out, errOut, 0, []string{"published 1 records through orders to all, eu"}, nil)
	code, out, errOut = run("r1\nr2\n", "pub", "--exchange", "orders", "--routing-key", "order.us.refunded", "--header", "kind=refund", "-")
	expect(t, code, out, errOut, 0, []string{"published 2 records through orders to all, refunds"}, nil)
	code, out, errOut = run("", "sub", "eu", "--from", "earliest", "--count", "1")
	expect(t, code, out, errOut, 0, []string{"p1"}, nil)
	code, out, errOut = run("", "sub", "all", "--from", "earliest", "--count", "3")
	expect(t, code, out, errOut, 0, []string{"p1\nr1\nr2"}, nil)

	// Unmatched: to the alternate. With it unbound from its stream, the
	// records are unroutable: dropped, or refused with --mandatory.
	code, out, errOut = run("", "pub", "--exchange", "orders", "--routing-key", "invoice", "i1")
	expect(t, code, out, errOut, 0, []string{"through orders to lost"}, nil)
	code, out, errOut = run("", "unbind", "fallback", "lost")
	expect(t, code, out, errOut, 0, []string{"unbound fallback: -> lost"}, nil)
	code, out, errOut = run("", "pub", "--exchange", "orders", "--routing-key", "invoice", "i2")
	expect(t, code, out, errOut, 0, []string{"1 records unroutable through orders", "dropped"}, nil)
	code, out, errOut = run("", "pub", "--exchange", "orders", "--routing-key", "invoice", "--mandatory", "i3")
	expect(t, code, out, errOut, 1, nil, []string{"weir pub:", "1 records unroutable", "not stored"})
	code, out, errOut = run("", "exchange", "ls")
	if code != 0 || !strings.Contains(out, "fallback  fanout") {
		t.Errorf("exchange ls: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "orders ") && !strings.HasSuffix(line, " 2") {
			t.Errorf("orders should count 2 unroutable records: %q", line)
		}
	}

	code, out, errOut = run("", "exchange", "rm", "hdr")
	expect(t, code, out, errOut, 0, []string{"deleted exchange hdr"}, nil)
	code, out, errOut = run("", "exchange", "rm", "hdr")
	expect(t, code, out, errOut, 1, nil, []string{"weir exchange rm:", "not found"})
	code, out, errOut = run("", "exchange", "ls")
	if code != 0 || strings.Contains(out, "hdr") {
		t.Errorf("exchange ls after rm: exit %d\n%s%s", code, out, errOut)
	}
}

func TestExchangeUsageErrors(t *testing.T) {
	tests := [][]string{
		{"exchange"},
		{"exchange", "frobnicate"},
		{"exchange", "declare", "x"},
		{"exchange", "declare", "x", "--type", "random"},
		{"exchange", "declare"},
		{"exchange", "ls", "extra"},
		{"exchange", "rm"},
		{"bind", "x"},
		{"bind", "x", "s", "extra"},
		{"bind", "x", "s", "--arg", "novalue"},
		{"unbind", "x"},
		{"pub", "--exchange", "x", "s", "msg"},
		{"pub", "s", "--routing-key", "k"},
		{"pub", "s", "--mandatory"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runWeir(t, args...)
			if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, "weir ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, nothing, a message", code, stdout, stderr, exitUsage)
			}
		})
	}
	for _, args := range [][]string{{"exchange", "-h"}, {"help", "bind"}, {"unbind", "--help"}, {"help", "exchange"}} {
		code, stdout, stderr := runWeir(t, args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "--server") || stderr != "" {
			t.Errorf("weir %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}
