// Package auth keeps Weir's users: a YAML file of user names with, for each,
// an argon2id hash of the password (for PLAIN-style checks), the stored keys
// of SCRAM-SHA-256 and SCRAM-SHA-512 (never the password) and the SHA-256
// digests of bearer tokens. Users checks credentials for every protocol
// front end; the CLI edits the file through the same type.
package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Errors.
var (
	// ErrUnauthenticated is returned for an unknown user, a wrong password
	// and an unknown token alike, so that a client cannot tell which users
	// exist.
	ErrUnauthenticated = errors.New("auth: authentication failed")
	// ErrInvalidFile is wrapped by every error about the content of a users
	// file; the message names the file, the line and the field.
	ErrInvalidFile = errors.New("invalid users file")
	// ErrUserExists and ErrNoUser are returned by the editing methods.
	ErrUserExists = errors.New("user already exists")
	ErrNoUser     = errors.New("no such user")
	// ErrInvalidName is returned for a user name Weir does not accept.
	ErrInvalidName = errors.New("invalid user name")
)

// validName is the form of a user name: it must survive SASL PLAIN (no
// NUL), HTTP Basic (no colon), SCRAM (no comma or equals sign to escape)
// and log lines.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// CheckName reports whether name can be a user name.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%w %q: want 1 to 128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", ErrInvalidName, name)
	}
	return nil
}

// user is one user, as checked and decoded.
type user struct {
	name     string
	created  time.Time
	password passwordHash
	scram    map[string]SCRAMKeys // mechanism → keys
	tokens   []token
	// vhosts are the AMQP virtual hosts the user may open; nil: all.
	vhosts []string
	// admin and permissions are the authorization rules (permissions.go):
	// nil permissions means unrestricted; principal is them compiled.
	admin       bool
	permissions []Permission
	principal   *Principal
	// maxConnections bounds the user's open connections (0: the server's
	// max-connections-per-user).
	maxConnections int
	// produceRate and consumeRate are byte-rate quotas in bytes a second
	// (0: none).
	produceRate, consumeRate int64
}

type token struct {
	digest  string // hex SHA-256
	created time.Time
}

// Users is the content of a users file. Its checking methods are safe for
// concurrent use; the editing methods (Add, Remove, NewToken) are not, and
// are meant for the CLI, which edits a file and saves it.
type Users struct {
	users  []*user
	byName map[string]*user
	tokens map[string]*user // token digest → user

	// dummy is checked against when a user is unknown, so that an unknown
	// user takes as long to refuse as a wrong password; made at first use.
	dummyOnce sync.Once
	dummy     passwordHash

	basic basicCache

	refusalsOnce sync.Once
	refusals     *Refusals // refusals.go
}

// New returns an empty set of users.
func New() *Users {
	return &Users{byName: map[string]*user{}, tokens: map[string]*user{}}
}

// Names lists the user names in the order of the file.
func (u *Users) Names() []string {
	names := make([]string, len(u.users))
	for i, x := range u.users {
		names[i] = x.name
	}
	return names
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.users) }

// UserInfo is what Info tells about a user: never a secret.
type UserInfo struct {
	Name    string
	Created time.Time
	Tokens  int
}

// Info describes the users in the order of the file.
func (u *Users) Info() []UserInfo {
	out := make([]UserInfo, len(u.users))
	for i, x := range u.users {
		out[i] = UserInfo{Name: x.name, Created: x.created, Tokens: len(x.tokens)}
	}
	return out
}

// SetVhosts limits the AMQP virtual hosts a user may open; nil lifts the
// limit (every vhost), an empty list allows none.
func (u *Users) SetVhosts(name string, vhosts []string) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	for _, v := range vhosts {
		if v == "" || len(v) > 255 {
			return fmt.Errorf("vhost %q: want 1 to 255 bytes", v)
		}
	}
	if vhosts != nil {
		vhosts = slices.Clone(vhosts)
	}
	x.vhosts = vhosts
	return nil
}

// Vhosts are the AMQP virtual hosts a user may open, and whether they are
// limited at all.
func (u *Users) Vhosts(name string) ([]string, bool, error) {
	x, ok := u.byName[name]
	if !ok {
		return nil, false, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	if x.vhosts == nil {
		return nil, false, nil
	}
	return slices.Clone(x.vhosts), true, nil
}

// AllowVhost reports whether user may open the AMQP virtual host vhost.
func (u *Users) AllowVhost(name, vhost string) bool {
	x, ok := u.byName[name]
	return ok && (x.vhosts == nil || slices.Contains(x.vhosts, vhost))
}

// Add adds a user with password, deriving its argon2id hash and SCRAM keys.
func (u *Users) Add(name, password string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if _, ok := u.byName[name]; ok {
		return fmt.Errorf("%w: %s", ErrUserExists, name)
	}
	x := &user{name: name, created: time.Now().UTC().Truncate(time.Second)}
	if err := x.setPassword(password); err != nil {
		return err
	}
	x.compile()
	u.users = append(u.users, x)
	u.byName[name] = x
	return nil
}

// SetPassword replaces the password of a user; its tokens stay valid.
func (u *Users) SetPassword(name, password string) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	return x.setPassword(password)
}

func (x *user) setPassword(password string) error {
	if password == "" {
		return errors.New("password must not be empty")
	}
	x.password = newPasswordHash(password)
	x.scram = map[string]SCRAMKeys{}
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA512} {
		keys, err := newSCRAMKeys(mech, password)
		if err != nil {
			return err
		}
		x.scram[mech] = keys
	}
	return nil
}

// Remove removes a user and its tokens.
func (u *Users) Remove(name string) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	u.users = slices.DeleteFunc(u.users, func(y *user) bool { return y == x })
	delete(u.byName, name)
	for _, t := range x.tokens {
		delete(u.tokens, t.digest)
	}
	return nil
}

// NewToken creates a bearer token for a user and returns it. Only its
// digest is kept: the token cannot be shown again.
func (u *Users) NewToken(name string) (string, error) {
	x, ok := u.byName[name]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	tok := newToken()
	d := tokenDigest(tok)
	x.tokens = append(x.tokens, token{digest: d, created: time.Now().UTC().Truncate(time.Second)})
	u.tokens[d] = x
	return tok, nil
}

// RevokeTokens removes every token of a user and returns how many there
// were.
func (u *Users) RevokeTokens(name string) (int, error) {
	x, ok := u.byName[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	n := len(x.tokens)
	for _, t := range x.tokens {
		delete(u.tokens, t.digest)
	}
	x.tokens = nil
	return n, nil
}

// CheckPassword checks a user name and password against the argon2id hash
// (for SASL PLAIN, AMQP PLAIN/AMQPLAIN, MQTT). It costs one slow hash even
// when the user does not exist. The error is ErrUnauthenticated.
func (u *Users) CheckPassword(name, password string) error {
	x, ok := u.byName[name]
	if !ok {
		u.dummyOnce.Do(func() { u.dummy = newPasswordHash("") })
		u.dummy.matches(password)
		return ErrUnauthenticated
	}
	if !x.password.matches(password) {
		return ErrUnauthenticated
	}
	return nil
}

// CheckBasic is CheckPassword for HTTP Basic authentication, which sends
// the password with every request: a successful check is remembered for a
// few minutes (as an HMAC of the credentials under a key of this process),
// so that only the first request of a client pays for the slow hash.
func (u *Users) CheckBasic(name, password string) error {
	if u.basic.hit(name, password) {
		if _, ok := u.byName[name]; ok {
			return nil
		}
	}
	if err := u.CheckPassword(name, password); err != nil {
		return err
	}
	u.basic.add(name, password)
	return nil
}

// CheckToken returns the user a bearer token belongs to, or
// ErrUnauthenticated.
func (u *Users) CheckToken(tok string) (string, error) {
	if !strings.HasPrefix(tok, tokenPrefix) {
		return "", ErrUnauthenticated
	}
	x, ok := u.tokens[tokenDigest(tok)]
	if !ok {
		return "", ErrUnauthenticated
	}
	return x.name, nil
}

// SCRAM returns the stored keys of a user for a SCRAM mechanism, or
// ErrUnauthenticated for an unknown user.
func (u *Users) SCRAM(mechanism, name string) (SCRAMKeys, error) {
	if _, err := SCRAMHash(mechanism); err != nil {
		return SCRAMKeys{}, err
	}
	x, ok := u.byName[name]
	if !ok {
		return SCRAMKeys{}, ErrUnauthenticated
	}
	keys, ok := x.scram[mechanism]
	if !ok {
		return SCRAMKeys{}, ErrUnauthenticated
	}
	return keys, nil
}

// basicCache remembers credentials that passed CheckBasic.
type basicCache struct {
	once    sync.Once
	key     []byte
	mu      sync.Mutex
	entries map[[32]byte]time.Time // HMAC(key, name NUL password) → expiry
}

const (
	basicCacheTTL  = 5 * time.Minute
	basicCacheSize = 4096
)

func (c *basicCache) sum(name, password string) [32]byte {
	c.once.Do(func() {
		c.key = make([]byte, 32)
		rand.Read(c.key)
	})
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [32]byte
	m.Sum(out[:0])
	return out
}

func (c *basicCache) hit(name, password string) bool {
	k := c.sum(name, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[k]
	return ok && time.Now().Before(exp)
}

func (c *basicCache) add(name, password string) {
	k := c.sum(name, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= basicCacheSize {
		c.entries = make(map[[32]byte]time.Time) // crude, bounded: start over
	}
	c.entries[k] = time.Now().Add(basicCacheTTL)
}

// The YAML form of the file.

type fileDoc struct {
	Users []fileUser `yaml:"users"`
}

type fileUser struct {
	Name        string     `yaml:"name"`
	Created     string     `yaml:"created,omitempty"`
	Password    string     `yaml:"password"`
	SCRAMSHA256 *fileSCRAM `yaml:"scram-sha-256"`
	SCRAMSHA512 *fileSCRAM `yaml:"scram-sha-512"`
	Tokens      []fileTok  `yaml:"tokens,omitempty"`
	// Vhosts limits the AMQP virtual hosts the user may open (absent:
	// all; empty: none).
	Vhosts *[]string `yaml:"vhosts,omitempty"`
	// Admin, Permissions: authorization (permissions.go). Without a
	// permissions key the user may do everything.
	Admin       bool              `yaml:"admin,omitempty"`
	Permissions *[]filePermission `yaml:"permissions,omitempty"`
	// MaxConnections bounds the user's open connections.
	MaxConnections int `yaml:"max-connections,omitempty"`
	// ProduceBytesPerSecond, ConsumeBytesPerSecond: byte-rate quotas.
	ProduceBytesPerSecond int64 `yaml:"produce-bytes-per-second,omitempty"`
	ConsumeBytesPerSecond int64 `yaml:"consume-bytes-per-second,omitempty"`
}

type fileSCRAM struct {
	Salt       string `yaml:"salt"`
	Iterations int    `yaml:"iterations"`
	StoredKey  string `yaml:"stored-key"`
	ServerKey  string `yaml:"server-key"`
}

type fileTok struct {
	SHA256  string `yaml:"sha256"`
	Created string `yaml:"created,omitempty"`
}

const fileHeader = `# Weir users. Edit with "weir user add|rm|token|passwd"; no password or token
# is stored, only salted hashes (argon2id for PLAIN-style checks, SCRAM stored
# keys, SHA-256 of bearer tokens). Authorization: "weir user grant|revoke";
# a user without a permissions key may do everything.
`

// Load reads and checks a users file.
func Load(path string) (*Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	return Parse(path, data)
}

// LoadOrNew is Load, but returns an empty set when the file does not exist
// (for the CLI, which creates it).
func LoadOrNew(path string) (*Users, error) {
	u, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil
	}
	return u, err
}

// Parse checks and decodes the content of a users file; name is the file
// name used in errors.
func Parse(name string, data []byte) (*Users, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w %s: line %d: %s", ErrInvalidFile, name, line, fmt.Sprintf(format, args...))
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return New(), nil // an empty file: no users
		}
		return nil, fmt.Errorf("%w %s: %v", ErrInvalidFile, name, err)
	}
	var doc fileDoc
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrInvalidFile, name, err)
	}
	var seqNode *yaml.Node
	if len(root.Content) > 0 {
		seqNode = lookup(root.Content[0], "users")
	}
	u := New()
	for i, fu := range doc.Users {
		line := 1
		var userNode *yaml.Node
		if seqNode != nil && i < len(seqNode.Content) {
			userNode = seqNode.Content[i]
			line = userNode.Line
		}
		fieldLine := func(path ...string) int {
			n := userNode
			for _, p := range path {
				if n = lookup(n, p); n == nil {
					return line
				}
			}
			return n.Line
		}
		if fu.Name == "" {
			return nil, fail(line, "user %d: field name is missing", i+1)
		}
		if err := CheckName(fu.Name); err != nil {
			return nil, fail(fieldLine("name"), "field name: %v", err)
		}
		if _, dup := u.byName[fu.Name]; dup {
			return nil, fail(fieldLine("name"), "user %q appears twice", fu.Name)
		}
		x := &user{name: fu.Name, scram: map[string]SCRAMKeys{}}
		if fu.Created != "" {
			t, err := time.Parse(time.RFC3339, fu.Created)
			if err != nil {
				return nil, fail(fieldLine("created"), "user %q: field created: not an RFC 3339 time", fu.Name)
			}
			x.created = t
		}
		if fu.Password == "" {
			return nil, fail(line, "user %q: field password is missing", fu.Name)
		}
		h, err := parsePasswordHash(fu.Password)
		if err != nil {
			return nil, fail(fieldLine("password"), "user %q: field password: %v", fu.Name, err)
		}
		x.password = h
		for _, s := range []struct {
			key, mech string
			f         *fileSCRAM
		}{{"scram-sha-256", SCRAMSHA256, fu.SCRAMSHA256}, {"scram-sha-512", SCRAMSHA512, fu.SCRAMSHA512}} {
			if s.f == nil {
				return nil, fail(line, "user %q: field %s is missing", fu.Name, s.key)
			}
			keys, field, err := s.f.decode(s.mech)
			if err != nil {
				return nil, fail(fieldLine(s.key, field), "user %q: field %s.%s: %v", fu.Name, s.key, field, err)
			}
			x.scram[s.mech] = keys
		}
		for j, ft := range fu.Tokens {
			tokLine := line
			if tn := lookup(userNode, "tokens"); tn != nil && j < len(tn.Content) {
				tokLine = tn.Content[j].Line
			}
			d, err := hex.DecodeString(ft.SHA256)
			if err != nil || len(d) != sha256.Size {
				return nil, fail(tokLine, "user %q: token %d: field sha256: want 64 hex digits", fu.Name, j+1)
			}
			digest := hex.EncodeToString(d)
			if _, dup := u.tokens[digest]; dup {
				return nil, fail(tokLine, "user %q: token %d appears twice", fu.Name, j+1)
			}
			t := token{digest: digest}
			if ft.Created != "" {
				if t.created, err = time.Parse(time.RFC3339, ft.Created); err != nil {
					return nil, fail(tokLine, "user %q: token %d: field created: not an RFC 3339 time", fu.Name, j+1)
				}
			}
			x.tokens = append(x.tokens, t)
			u.tokens[digest] = x
		}
		if fu.Vhosts != nil {
			x.vhosts = []string{}
			for j, v := range *fu.Vhosts {
				if v == "" || len(v) > 255 {
					return nil, fail(fieldLine("vhosts"), "user %q: vhost %d: want 1 to 255 bytes", fu.Name, j+1)
				}
				x.vhosts = append(x.vhosts, v)
			}
		}
		x.admin = fu.Admin
		if fu.Permissions != nil {
			ruleLine := func(j int, field string) int {
				pn := lookup(userNode, "permissions")
				if pn == nil || j >= len(pn.Content) {
					return fieldLine("permissions")
				}
				if f := lookup(pn.Content[j], field); f != nil {
					return f.Line
				}
				return pn.Content[j].Line
			}
			if x.permissions, err = decodePermissions(*fu.Permissions, ruleLine, fail, fu.Name); err != nil {
				return nil, err
			}
		}
		if fu.MaxConnections < 0 {
			return nil, fail(fieldLine("max-connections"), "user %q: field max-connections: %d, want 0 (the server's limit) or more", fu.Name, fu.MaxConnections)
		}
		x.maxConnections = fu.MaxConnections
		for _, q := range []struct {
			field string
			v     int64
		}{{"produce-bytes-per-second", fu.ProduceBytesPerSecond}, {"consume-bytes-per-second", fu.ConsumeBytesPerSecond}} {
			if q.v < 0 {
				return nil, fail(fieldLine(q.field), "user %q: field %s: %d, want 0 (no quota) or more", fu.Name, q.field, q.v)
			}
		}
		x.produceRate, x.consumeRate = fu.ProduceBytesPerSecond, fu.ConsumeBytesPerSecond
		x.compile()
		u.users = append(u.users, x)
		u.byName[x.name] = x
	}
	return u, nil
}

// decode checks the stored keys of a SCRAM mechanism; on error it returns
// the name of the bad field.
func (f *fileSCRAM) decode(mech string) (SCRAMKeys, string, error) {
	h, _ := SCRAMHash(mech)
	size := h().Size()
	salt, err := b64.DecodeString(f.Salt)
	if err != nil || len(salt) < 8 {
		return SCRAMKeys{}, "salt", errors.New("not base64 of at least 8 bytes")
	}
	if f.Iterations < MinSCRAMIterations || f.Iterations > maxSCRAMIterations {
		return SCRAMKeys{}, "iterations", fmt.Errorf("%d, want %d to %d", f.Iterations, MinSCRAMIterations, maxSCRAMIterations)
	}
	stored, err := b64.DecodeString(f.StoredKey)
	if err != nil || len(stored) != size {
		return SCRAMKeys{}, "stored-key", fmt.Errorf("not base64 of %d bytes", size)
	}
	server, err := b64.DecodeString(f.ServerKey)
	if err != nil || len(server) != size {
		return SCRAMKeys{}, "server-key", fmt.Errorf("not base64 of %d bytes", size)
	}
	return SCRAMKeys{Salt: salt, Iterations: f.Iterations, StoredKey: stored, ServerKey: server}, "", nil
}

// lookup returns the value of key in a mapping node, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Marshal encodes the users in the file format.
func (u *Users) Marshal() ([]byte, error) {
	doc := fileDoc{Users: make([]fileUser, 0, len(u.users))}
	for _, x := range u.users {
		fu := fileUser{Name: x.name, Password: x.password.String()}
		if !x.created.IsZero() {
			fu.Created = x.created.Format(time.RFC3339)
		}
		enc := func(mech string) *fileSCRAM {
			k := x.scram[mech]
			return &fileSCRAM{Salt: b64.EncodeToString(k.Salt), Iterations: k.Iterations,
				StoredKey: b64.EncodeToString(k.StoredKey), ServerKey: b64.EncodeToString(k.ServerKey)}
		}
		fu.SCRAMSHA256, fu.SCRAMSHA512 = enc(SCRAMSHA256), enc(SCRAMSHA512)
		for _, t := range x.tokens {
			ft := fileTok{SHA256: t.digest}
			if !t.created.IsZero() {
				ft.Created = t.created.Format(time.RFC3339)
			}
			fu.Tokens = append(fu.Tokens, ft)
		}
		if x.vhosts != nil {
			fu.Vhosts = &x.vhosts
		}
		fu.Admin, fu.Permissions, fu.MaxConnections = x.admin, encodePermissions(x.permissions), x.maxConnections
		fu.ProduceBytesPerSecond, fu.ConsumeBytesPerSecond = x.produceRate, x.consumeRate
		doc.Users = append(doc.Users, fu)
	}
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Save writes the users to path atomically (a temporary file in the same
// directory, fsynced, then renamed over it), readable by its owner only.
func (u *Users) Save(path string) error {
	data, err := u.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("users file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("users file: %w", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename durable where the OS allows; best effort
		d.Close()
	}
	return nil
}

// ParseBasic splits the value of an HTTP "Authorization: Basic ..." header
// credential into user and password.
func ParseBasic(credential string) (name, password string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(credential)
	if err != nil {
		return "", "", false
	}
	name, password, ok = strings.Cut(string(raw), ":")
	return name, password, ok
}
