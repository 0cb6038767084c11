package main

import (
	"crypto/tls"
	"net"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/tlstest"
)

// tlsServer is a weir server with HTTPS only, requiring client
// certificates, and the throwaway CA and certificates it uses.
type tlsServer struct {
	p              *weirProcess
	addr, dir      string
	ca             *tlstest.CA
	server, client tlstest.Pair
}

func startTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "cli")
	server := ca.Server(t, dir, "server", "127.0.0.1")
	p := startWeir(t, cleanEnv(), "serve", "--data", t.TempDir(), "--http-addr=", "--https-addr", "127.0.0.1:0",
		"--kafka-addr=", "--amqp-addr=", "--mqtt-addr=", "--log-level", "info",
		"--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile,
		"--tls-client-ca-file", ca.CertFile, "--tls-client-auth", "require", "--tls-reload-interval", "0s")
	addr := p.waitForLine(t, "https listening on ")
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exit(t); code != 0 {
			t.Errorf("server exit code %d; stderr:\n%s", code, &p.stderr)
		}
	})
	return &tlsServer{p: p, addr: addr, dir: dir, ca: ca, server: server, client: ca.Client(t, dir, "cli-user")}
}

// TestClientCommandsOverTLS: the client commands speak TLS with --tls-ca,
// present a client certificate with --tls-cert and --tls-key (or the
// WEIR_TLS_* variables), and fail clearly without them.
func TestClientCommandsOverTLS(t *testing.T) {
	ts := startTLSServer(t)
	addr, dir, ca, server, client := ts.addr, ts.dir, ts.ca, ts.server, ts.client
	withCert := []string{"--tls-ca", ca.CertFile, "--tls-cert", client.CertFile, "--tls-key", client.KeyFile}

	code, out, errOut := weirCmd(t, "", nil, append([]string{"stream", "create", "s1", "--server", addr}, withCert...)...)
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = weirCmd(t, "hello\n", nil, append([]string{"pub", "s1", "--server", "https://" + addr}, withCert...)...)
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = weirCmd(t, "", []string{"WEIR_SERVER=" + addr, "WEIR_TLS_CA=" + ca.CertFile, "WEIR_TLS_CERT=" + client.CertFile, "WEIR_TLS_KEY=" + client.KeyFile},
		"sub", "s1", "--from", "earliest", "--count", "1")
	expect(t, code, out, errOut, 0, []string{"hello"}, nil)
	// Without checking the server, but with the client certificate.
	code, out, errOut = weirCmd(t, "", nil, "stream", "ls", "--server", addr, "--tls-insecure-skip-verify", "--tls-cert", client.CertFile, "--tls-key", client.KeyFile)
	expect(t, code, out, errOut, 0, []string{"s1"}, nil)

	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"server not trusted", []string{"--tls-cert", client.CertFile, "--tls-key", client.KeyFile}, 1, "certificate signed by unknown authority"},
		{"cert without key", []string{"--tls-ca", ca.CertFile, "--tls-cert", client.CertFile}, 2, "--tls-cert needs --tls-key"},
		{"missing CA file", []string{"--tls-ca", dir + "/nope.pem"}, 1, "--tls-ca: open " + dir + "/nope.pem"},
		{"key of another certificate", []string{"--tls-ca", ca.CertFile, "--tls-cert", client.CertFile, "--tls-key", server.KeyFile}, 1, "does not match"},
		{"CA file not PEM", []string{"--tls-ca", client.KeyFile}, 1, "no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := weirCmd(t, "", nil, append([]string{"stream", "ls", "--server", addr}, tt.args...)...)
			expect(t, code, out, errOut, tt.code, nil, []string{tt.wantErr})
		})
	}
	// Without a client certificate the server refuses the handshake. In TLS
	// 1.3 the client finishes its side first, so the refusal ("certificate
	// required" alert) may reach it only after it wrote its request, as a
	// broken connection, or while HTTP/2 sets the connection up (which the
	// transport reports as a connection it could not establish).
	t.Run("no client certificate", func(t *testing.T) {
		code, _, errOut := weirCmd(t, "", nil, "stream", "ls", "--server", addr, "--tls-ca", ca.CertFile)
		if code != 1 || !regexp.MustCompile(`certificate required|broken pipe|connection reset by peer|client conn could not be established`).MatchString(errOut) {
			t.Errorf("exit %d, stderr %q: want 1 and the server's refusal", code, errOut)
		}
	})
}

// TestServeReloadsTLSOnSIGHUP: after the certificate files are replaced,
// SIGHUP makes the server present the new certificate.
func TestServeReloadsTLSOnSIGHUP(t *testing.T) {
	ts := startTLSServer(t)
	p, addr, ca, server, client := ts.p, ts.addr, ts.ca, ts.server, ts.client
	serial := func() string {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, ca.ClientConfig(client))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != server.TLS.Leaf.SerialNumber.String() {
		t.Fatalf("serves %s", got)
	}
	renewed := ca.Server(t, ts.dir, "server", "127.0.0.1")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := renewed.TLS.Leaf.SerialNumber.String()
	deadline := time.Now().Add(10 * time.Second)
	for serial() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served after SIGHUP; stderr:\n%s", &p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
