package auth

// Authorization rules: what a user may do to which resources. The users
// file keeps them per user (permissions, admin); Principal compiles them for
// the broker, which checks every operation against them (see
// internal/broker/authz.go and "Authorization" in docs/SECURITY.md).

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Resource is a kind of thing a rule is about.
type Resource string

// The resources. A queue is a stream with a shared subscription of the
// same name, so a queue rule also covers the stream and the subscription
// of its name; a group rule also covers a subscription of its name (Kafka
// share groups are shared subscriptions). Topic is an MQTT topic name or
// filter. Any ("*") in a rule matches every resource.
const (
	ResourceStream       Resource = "stream"
	ResourceQueue        Resource = "queue"
	ResourceExchange     Resource = "exchange"
	ResourceSubscription Resource = "subscription"
	ResourceGroup        Resource = "group"
	ResourceTopic        Resource = "topic"
	ResourceAny          Resource = "*"
)

// Resources lists the resource words a rule may use.
var Resources = []Resource{ResourceStream, ResourceQueue, ResourceExchange, ResourceSubscription, ResourceGroup, ResourceTopic, ResourceAny}

// Action is what a rule allows.
type Action string

// The actions: publish (write records), consume (read, join groups, commit
// offsets, ack), manage (create, delete, bind, purge, change settings).
const (
	ActionPublish Action = "publish"
	ActionConsume Action = "consume"
	ActionManage  Action = "manage"
)

// Actions lists the action words a rule may use.
var Actions = []Action{ActionPublish, ActionConsume, ActionManage}

// ErrInvalidPermission is wrapped by every error about a rule.
var ErrInvalidPermission = errors.New("invalid permission")

// Permission is one rule: the actions allowed on the resources of one kind
// whose names match Name. Name is a glob: '*' matches any run of characters
// (dots and slashes included), '?' one character, anything else itself, so
// "orders.*" is every name with the prefix "orders." and "*" every name.
type Permission struct {
	Resource Resource
	Name     string
	Actions  []Action
}

func (p Permission) String() string {
	acts := make([]string, len(p.Actions))
	for i, a := range p.Actions {
		acts[i] = string(a)
	}
	return fmt.Sprintf("%s %q: %s", p.Resource, p.Name, strings.Join(acts, ","))
}

// CheckPermission reports what is wrong with a rule, naming the field.
func CheckPermission(p Permission) error {
	_, err := checkPermission(p)
	return err
}

// checkPermission is CheckPermission, also returning the bad field's name.
func checkPermission(p Permission) (string, error) {
	if !slices.Contains(Resources, p.Resource) {
		return "resource", fmt.Errorf("%w: field resource: %q, want one of %s", ErrInvalidPermission, p.Resource, joinWords(Resources))
	}
	if p.Name == "" || len(p.Name) > 255 {
		return "name", fmt.Errorf("%w: field name: want 1 to 255 bytes (a name or a glob such as orders.*)", ErrInvalidPermission)
	}
	if len(p.Actions) == 0 {
		return "actions", fmt.Errorf("%w: field actions: want at least one of %s", ErrInvalidPermission, joinWords(Actions))
	}
	for _, a := range p.Actions {
		if !slices.Contains(Actions, a) {
			return "actions", fmt.Errorf("%w: field actions: %q, want %s", ErrInvalidPermission, a, joinWords(Actions))
		}
	}
	return "", nil
}

// ParseActions parses "publish,consume" (for the CLI).
func ParseActions(s string) ([]Action, error) {
	var out []Action
	for w := range strings.SplitSeq(s, ",") {
		a := Action(strings.TrimSpace(w))
		if !slices.Contains(Actions, a) {
			return nil, fmt.Errorf("%w: action %q, want %s", ErrInvalidPermission, a, joinWords(Actions))
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

func joinWords[T ~string](words []T) string {
	s := make([]string, len(words))
	for i, w := range words {
		s[i] = string(w)
	}
	return strings.Join(s, ", ")
}

// Principal is an authenticated user with its compiled rules, as the broker
// checks them. A nil *Principal allows nothing.
type Principal struct {
	user string
	// unrestricted: admin, or no permissions key (files written before
	// authorization existed keep working).
	unrestricted bool
	admin        bool
	rules        []Permission
	// produce and consume are the user's byte-rate quotas (quota.go).
	produce, consume *ByteRate
}

// NewPrincipal returns a principal for user with rules; admin allows
// everything.
func NewPrincipal(user string, admin bool, rules []Permission) *Principal {
	return &Principal{user: user, admin: admin, unrestricted: admin, rules: slices.Clone(rules)}
}

// Unrestricted returns a principal allowed everything (a user without
// permissions).
func Unrestricted(user string) *Principal {
	return &Principal{user: user, unrestricted: true}
}

// User is the principal's user name.
func (p *Principal) User() string {
	if p == nil {
		return ""
	}
	return p.user
}

// Admin reports whether the user is an administrator (admin: true).
func (p *Principal) Admin() bool { return p != nil && p.admin }

// Allowed reports whether the principal may do act to the resource res
// named name.
func (p *Principal) Allowed(res Resource, name string, act Action) bool {
	if p == nil {
		return false
	}
	if p.unrestricted {
		return true
	}
	for _, r := range p.rules {
		if covers(r.Resource, res) && slices.Contains(r.Actions, act) && Match(r.Name, name) {
			return true
		}
	}
	return false
}

// AllowedAny reports whether the principal may do anything at all to the
// resource (Kafka's DESCRIBE: Metadata shows only such topics).
func (p *Principal) AllowedAny(res Resource, name string) bool {
	return slices.ContainsFunc(Actions, func(a Action) bool { return p.Allowed(res, name, a) })
}

// covers reports whether a rule about resource rule applies to a check of
// resource res.
func covers(rule, res Resource) bool {
	switch {
	case rule == res || rule == ResourceAny:
		return true
	case rule == ResourceQueue:
		return res == ResourceStream || res == ResourceSubscription
	case rule == ResourceGroup:
		return res == ResourceSubscription
	}
	return false
}

// Match reports whether name matches the glob pattern: '*' matches any run
// of characters, '?' any one character.
func Match(pattern, name string) bool {
	// Iterative matching with one backtrack point: linear in practice and
	// never exponential, whatever the pattern.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]) && pattern[p] != '*':
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Principal returns the principal of a user: its rules compiled, or
// unrestricted when the user has no permissions key. ErrNoUser for an
// unknown user.
func (u *Users) Principal(name string) (*Principal, error) {
	x, ok := u.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	return x.principal, nil
}

// Permissions returns a user's rules, whether it has any permissions key at
// all (false: unrestricted), and whether it is an administrator.
func (u *Users) Permissions(name string) (rules []Permission, limited, admin bool, err error) {
	x, ok := u.byName[name]
	if !ok {
		return nil, false, false, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	return slices.Clone(x.permissions), x.permissions != nil, x.admin, nil
}

// SetAdmin makes a user an administrator (allowed everything) or not.
func (u *Users) SetAdmin(name string, admin bool) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	x.admin = admin
	x.compile()
	return nil
}

// Grant adds actions on the resources matching a pattern to a user's rules:
// to the rule of the same resource and name when there is one. A user
// without rules (unrestricted) gets its first rule and so becomes limited
// to what its rules allow.
func (u *Users) Grant(name string, p Permission) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	if err := CheckPermission(p); err != nil {
		return err
	}
	if x.permissions == nil {
		x.permissions = []Permission{}
	}
	i := slices.IndexFunc(x.permissions, func(r Permission) bool { return r.Resource == p.Resource && r.Name == p.Name })
	if i < 0 {
		x.permissions = append(x.permissions, Permission{Resource: p.Resource, Name: p.Name})
		i = len(x.permissions) - 1
	}
	r := &x.permissions[i]
	for _, a := range p.Actions {
		if !slices.Contains(r.Actions, a) {
			r.Actions = append(slices.Clone(r.Actions), a)
		}
	}
	x.compile()
	return nil
}

// Revoke removes actions (all of them when p.Actions is empty) from the
// user's rule of exactly that resource and name; a rule left without
// actions is removed. Revoking the last rule leaves an empty list, which
// allows nothing (not the unrestricted access of a user without rules).
func (u *Users) Revoke(name string, p Permission) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	i := slices.IndexFunc(x.permissions, func(r Permission) bool { return r.Resource == p.Resource && r.Name == p.Name })
	if i < 0 {
		return fmt.Errorf("%w: user %s has no rule for %s %q", ErrInvalidPermission, name, p.Resource, p.Name)
	}
	r := &x.permissions[i]
	if len(p.Actions) == 0 {
		r.Actions = nil
	} else {
		r.Actions = slices.DeleteFunc(slices.Clone(r.Actions), func(a Action) bool { return slices.Contains(p.Actions, a) })
	}
	if len(r.Actions) == 0 {
		x.permissions = slices.Delete(x.permissions, i, i+1)
	}
	x.compile()
	return nil
}

// compile rebuilds the user's principal from its fields.
func (x *user) compile() {
	if x.permissions == nil {
		x.principal = Unrestricted(x.name)
		x.principal.admin = x.admin
	} else {
		x.principal = NewPrincipal(x.name, x.admin, x.permissions)
	}
	x.principal.produce = NewByteRate(x.produceRate)
	x.principal.consume = NewByteRate(x.consumeRate)
}

// SetQuotas sets a user's byte-rate quotas in bytes a second (0: none).
func (u *Users) SetQuotas(name string, produce, consume int64) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	if produce < 0 || consume < 0 {
		return fmt.Errorf("byte rates must not be negative (0: no quota)")
	}
	x.produceRate, x.consumeRate = produce, consume
	x.compile()
	return nil
}

// Quotas returns a user's byte-rate quotas in bytes a second (0: none).
func (u *Users) Quotas(name string) (produce, consume int64) {
	if x, ok := u.byName[name]; ok {
		return x.produceRate, x.consumeRate
	}
	return 0, 0
}

// filePermission is a rule in the users file.
type filePermission struct {
	Resource string   `yaml:"resource"`
	Name     string   `yaml:"name"`
	Actions  []string `yaml:"actions,flow"`
}

// decodePermissions checks the permissions of a user in the file; line
// returns the line of rule i (or of its field).
func decodePermissions(in []filePermission, line func(i int, field string) int, fail func(int, string, ...any) error, userName string) ([]Permission, error) {
	out := make([]Permission, 0, len(in))
	for i, fp := range in {
		p := Permission{Resource: Resource(fp.Resource), Name: fp.Name}
		for _, a := range fp.Actions {
			p.Actions = append(p.Actions, Action(a))
		}
		if field, err := checkPermission(p); err != nil {
			return nil, fail(line(i, field), "user %q: permission %d: %v", userName, i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func encodePermissions(in []Permission) *[]filePermission {
	if in == nil {
		return nil
	}
	out := make([]filePermission, len(in))
	for i, p := range in {
		fp := filePermission{Resource: string(p.Resource), Name: p.Name}
		for _, a := range p.Actions {
			fp.Actions = append(fp.Actions, string(a))
		}
		out[i] = fp
	}
	return &out
}

// MaxConnections is the user's own connection limit (0: none set, the
// server's max-connections-per-user applies).
func (u *Users) MaxConnections(name string) int {
	if x, ok := u.byName[name]; ok {
		return x.maxConnections
	}
	return 0
}

// SetMaxConnections sets the user's own connection limit (0: the server's).
func (u *Users) SetMaxConnections(name string, n int) error {
	x, ok := u.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	if n < 0 {
		return fmt.Errorf("max-connections %d: want 0 or more", n)
	}
	x.maxConnections = n
	return nil
}
