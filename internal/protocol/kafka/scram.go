package kafka

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/weirmq/weir/internal/auth"
)

// SCRAMCredentials are what a server stores for a SCRAM user (RFC 5802):
// the salt and iteration count of the salted password and two keys derived
// from it, from which the password cannot be recovered.
type SCRAMCredentials = auth.SCRAMKeys

// NewSCRAMCredentials derives the stored credentials of a password for a
// SCRAM mechanism, with a random salt when salt is nil.
func NewSCRAMCredentials(mechanism, password string, salt []byte, iterations int) (SCRAMCredentials, error) {
	if salt == nil {
		salt = make([]byte, 16)
		rand.Read(salt)
	}
	return auth.DeriveSCRAMKeys(mechanism, password, salt, iterations)
}

// scramExchange is the server side of one SCRAM authentication: the
// client-first message, then the client-final message.
type scramExchange struct {
	mechanism string
	lookup    func(mechanism, user string) (SCRAMCredentials, error)

	user            string
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
	clientNonce     string
	creds           SCRAMCredentials
	step2           bool
}

var errSCRAMMalformed = errors.New("malformed SCRAM message")

// step takes the client's next message and returns the server's answer,
// and whether the exchange succeeded.
func (x *scramExchange) step(msg []byte) ([]byte, bool, error) {
	if !x.step2 {
		return x.first(string(msg))
	}
	return x.final(string(msg))
}

func (x *scramExchange) first(msg string) ([]byte, bool, error) {
	// gs2-header: "n,," or "y,," (no channel binding), optionally with an
	// authzid "a=..." between the commas.
	i := strings.IndexByte(msg, ',')
	if i < 0 {
		return nil, false, errSCRAMMalformed
	}
	j := strings.IndexByte(msg[i+1:], ',')
	if j < 0 {
		return nil, false, errSCRAMMalformed
	}
	cb, authz := msg[:i], msg[i+1:i+1+j]
	if cb != "n" && cb != "y" {
		return nil, false, errors.New("SCRAM channel binding is not supported")
	}
	x.gs2Header = msg[:i+1+j+1]
	x.clientFirstBare = msg[i+1+j+1:]
	attrs, err := scramAttributes(x.clientFirstBare)
	if err != nil {
		return nil, false, err
	}
	if attrs["m"] != "" {
		return nil, false, errors.New("SCRAM extensions are not supported")
	}
	user, err := scramUnescape(attrs["n"])
	if err != nil || user == "" || attrs["r"] == "" {
		return nil, false, errSCRAMMalformed
	}
	if authz != "" {
		if a, err := scramUnescape(strings.TrimPrefix(authz, "a=")); err != nil || a != user {
			return nil, false, errors.New("SCRAM authorization identity differs from the user")
		}
	}
	x.user = user
	creds, err := x.lookup(x.mechanism, user)
	if err != nil {
		return nil, false, err
	}
	if creds.Iterations < auth.MinSCRAMIterations || len(creds.Salt) == 0 {
		return nil, false, fmt.Errorf("SCRAM credentials of %q are unusable", user)
	}
	x.creds = creds
	var sn [24]byte
	rand.Read(sn[:])
	x.clientNonce = attrs["r"]
	x.nonce = attrs["r"] + base64.RawStdEncoding.EncodeToString(sn[:])
	x.serverFirst = "r=" + x.nonce + ",s=" + base64.StdEncoding.EncodeToString(creds.Salt) + ",i=" + strconv.Itoa(creds.Iterations)
	x.step2 = true
	return []byte(x.serverFirst), false, nil
}

func (x *scramExchange) final(msg string) ([]byte, bool, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, false, errSCRAMMalformed
	}
	withoutProof := msg[:i]
	attrs, err := scramAttributes(withoutProof)
	if err != nil {
		return nil, false, err
	}
	if attrs["c"] != base64.StdEncoding.EncodeToString([]byte(x.gs2Header)) {
		return nil, false, errors.New("SCRAM channel binding data differs")
	}
	// librdkafka (kcat, confluent-kafka clients) sends its own nonce again
	// before the combined one; Apache Kafka accepts that (it checks that the
	// nonce ends with the server's), so this accepts exactly that form too.
	// The proof covers the message as sent either way.
	if r := attrs["r"]; r != x.nonce && r != x.clientNonce+x.nonce {
		return nil, false, errors.New("SCRAM nonce differs")
	}
	proof, err := base64.StdEncoding.DecodeString(msg[i+3:])
	h, _ := auth.SCRAMHash(x.mechanism)
	if err != nil || len(proof) != h().Size() {
		return nil, false, errSCRAMMalformed
	}
	authMessage := x.clientFirstBare + "," + x.serverFirst + "," + withoutProof
	signature := auth.HMAC(h, x.creds.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	for k := range proof {
		clientKey[k] = proof[k] ^ signature[k]
	}
	stored := h()
	stored.Write(clientKey)
	if subtle.ConstantTimeCompare(stored.Sum(nil), x.creds.StoredKey) != 1 {
		return nil, false, ErrAuthenticationFailed
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(auth.HMAC(h, x.creds.ServerKey, authMessage))), true, nil
}

// scramAttributes parses "k=v,k=v" (values may contain '=').
func scramAttributes(s string) (map[string]string, error) {
	out := make(map[string]string)
	for _, kv := range strings.Split(s, ",") {
		if len(kv) < 2 || kv[1] != '=' {
			return nil, errSCRAMMalformed
		}
		out[kv[:1]] = kv[2:]
	}
	return out, nil
}

// scramUnescape decodes a SCRAM user name: "=2C" is ',' and "=3D" is '='.
func scramUnescape(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errSCRAMMalformed
		}
		i += 2
	}
	return b.String(), nil
}
