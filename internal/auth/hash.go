package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of new password hashes: the second recommendation of
// OWASP's password storage cheat sheet (19 MiB, two passes, one lane),
// which keeps a check near 20 ms on a server core. Stored hashes carry their
// own parameters, so these can grow without invalidating a users file.
const (
	argon2Memory  = 19 * 1024 // KiB
	argon2Time    = 2
	argon2Threads = 1
	argon2KeyLen  = 32
	saltLen       = 16
)

// Bounds on the parameters a users file may give, so that a crafted file
// cannot make every login take minutes or gigabytes.
const (
	maxArgon2Memory  = 1 << 20 // KiB: 1 GiB
	maxArgon2Time    = 64
	maxArgon2Threads = 16
)

// SCRAM iteration counts: RFC 7677 asks for at least 4096; the client pays
// for them at every login, the server never.
const (
	DefaultSCRAMIterations = 8192
	MinSCRAMIterations     = 4096
	maxSCRAMIterations     = 1 << 20
)

// SCRAM mechanism names, as SASL spells them.
const (
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA512 = "SCRAM-SHA-512"
)

var b64 = base64.RawStdEncoding

// passwordHash is a parsed argon2id hash in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, base64 without padding.
type passwordHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func newPasswordHash(password string) passwordHash {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	h := passwordHash{memory: argon2Memory, time: argon2Time, threads: argon2Threads, salt: salt}
	h.key = h.derive(password)
	return h
}

func (h passwordHash) derive(password string) []byte {
	return argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, argon2KeyLen)
}

// matches reports whether password is the one h was made from, in time
// that does not depend on where the keys differ.
func (h passwordHash) matches(password string) bool {
	key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

func (h passwordHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.memory, h.time, h.threads,
		b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

func parsePasswordHash(s string) (passwordHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return passwordHash{}, errors.New("not an argon2id hash ($argon2id$v=19$m=...,t=...,p=...$salt$key)")
	}
	if parts[1] != "argon2id" {
		return passwordHash{}, fmt.Errorf("algorithm %q, want argon2id", parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return passwordHash{}, fmt.Errorf("version %q, want v=%d", parts[2], argon2.Version)
	}
	var h passwordHash
	for param := range strings.SplitSeq(parts[3], ",") {
		name, value, _ := strings.Cut(param, "=")
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return passwordHash{}, fmt.Errorf("parameter %q is not a number", param)
		}
		switch name {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n > maxArgon2Threads {
				return passwordHash{}, fmt.Errorf("p=%d, at most %d", n, maxArgon2Threads)
			}
			h.threads = uint8(n)
		default:
			return passwordHash{}, fmt.Errorf("unknown parameter %q", param)
		}
	}
	switch {
	case h.memory < 8*uint32(h.threads) || h.memory > maxArgon2Memory:
		return passwordHash{}, fmt.Errorf("m=%d, want 8*p to %d KiB", h.memory, maxArgon2Memory)
	case h.time < 1 || h.time > maxArgon2Time:
		return passwordHash{}, fmt.Errorf("t=%d, want 1 to %d", h.time, maxArgon2Time)
	case h.threads < 1:
		return passwordHash{}, errors.New("p must be at least 1")
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return passwordHash{}, errors.New("salt is not base64 of at least 8 bytes")
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return passwordHash{}, errors.New("key is not base64 of 16 to 64 bytes")
	}
	return h, nil
}

// SCRAMKeys are what a server keeps of a password for one SCRAM mechanism
// (RFC 5802 section 3): the salt and iteration count of the salted password
// and two keys derived from it, from which the password cannot be
// recovered but a client's proof can be checked.
type SCRAMKeys struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// SCRAMHash is the hash function of a SCRAM mechanism.
func SCRAMHash(mechanism string) (func() hash.Hash, error) {
	switch mechanism {
	case SCRAMSHA256:
		return sha256.New, nil
	case SCRAMSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("auth: %q is not a SCRAM mechanism (%s, %s)", mechanism, SCRAMSHA256, SCRAMSHA512)
}

// DeriveSCRAMKeys computes the stored keys of password for mechanism with
// salt and iterations (RFC 5802: SaltedPassword is PBKDF2 with the HMAC of
// the mechanism's hash). Passwords are used as given: Weir does not apply
// SASLprep, so non-ASCII passwords must be typed in the same normalization
// by every client.
func DeriveSCRAMKeys(mechanism, password string, salt []byte, iterations int) (SCRAMKeys, error) {
	h, err := SCRAMHash(mechanism)
	if err != nil {
		return SCRAMKeys{}, err
	}
	if iterations < MinSCRAMIterations || iterations > maxSCRAMIterations {
		return SCRAMKeys{}, fmt.Errorf("auth: SCRAM iterations %d, want %d to %d", iterations, MinSCRAMIterations, maxSCRAMIterations)
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return SCRAMKeys{}, err
	}
	clientKey := HMAC(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return SCRAMKeys{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  HMAC(h, salted, "Server Key"),
	}, nil
}

func newSCRAMKeys(mechanism, password string) (SCRAMKeys, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	return DeriveSCRAMKeys(mechanism, password, salt, DefaultSCRAMIterations)
}

// HMAC is HMAC(key, msg) with the hash function h (SCRAM's HMAC()).
func HMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// tokenPrefix starts every bearer token, so that a leaked one is easy to
// recognise (and to find with secret scanners).
const tokenPrefix = "weir_"

// newToken returns a random bearer token: the prefix and 32 random bytes
// in base64url.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// tokenDigest is what the users file keeps of a token: its SHA-256 in hex.
// Tokens are random and long, so a fast hash is enough.
func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return fmt.Sprintf("%x", sum)
}
