package weir

// CloudEvents 1.0 in records, as the CloudEvents Kafka protocol binding
// maps them: binary mode (attributes in ce_ headers, data as the value) on
// write and read, structured mode (an application/cloudevents+json value)
// on read.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// CloudEventsSpecVersion is the version of the CloudEvents specification
// the SDK reads and writes.
const CloudEventsSpecVersion = "1.0"

// CloudEvents header names: the binding's ce_ prefix and the attribute
// name. datacontenttype is the content-type header.
const (
	CloudEventsHeaderPrefix = "ce_"
	HeaderCESpecVersion     = "ce_specversion"
	HeaderCEID              = "ce_id"
	HeaderCESource          = "ce_source"
	HeaderCEType            = "ce_type"
	HeaderCESubject         = "ce_subject"
	HeaderCETime            = "ce_time"
	HeaderCEDataSchema      = "ce_dataschema"
)

// CloudEventsJSON is the media type of a CloudEvent in structured mode,
// in the JSON event format.
const CloudEventsJSON = "application/cloudevents+json"

// PartitionKeyExtension is the extension of the CloudEvents partitioning
// extension: its value is the key of the event's record.
const PartitionKeyExtension = "partitionkey"

// ErrInvalidCloudEvent is the error of a CloudEvent that lacks a required
// attribute or has a malformed one, and of a record that is not a
// CloudEvent.
var ErrInvalidCloudEvent = errors.New("weir: invalid CloudEvent")

// CloudEvent is an event in the CloudEvents 1.0 format
// (https://cloudevents.io). ID, Source and Type are required; ID and
// Source together identify the event.
type CloudEvent struct {
	// SpecVersion is the CloudEvents version: "1.0". Empty on write
	// means "1.0".
	SpecVersion string
	// ID identifies the event among those of its Source.
	ID string
	// Source is the context the event happened in, a URI reference:
	// "/orders/service", "urn:example:billing".
	Source string
	// Type is the kind of event: "com.example.order.paid".
	Type string
	// Subject is what the event is about within Source; optional.
	Subject string
	// Time is when the event happened; zero: unset.
	Time time.Time
	// DataContentType is Data's media type ("application/json");
	// optional.
	DataContentType string
	// DataSchema is the URI of the schema Data adheres to; optional.
	DataSchema string
	// Extensions are further attributes, by name: lower-case letters and
	// digits. The partitionkey extension is the record's key.
	Extensions map[string]string
	// Data is the event's payload; nil: none.
	Data []byte
}

// coreAttributes are the attribute names an extension may not take.
var coreAttributes = []string{"specversion", "id", "source", "type", "subject", "time",
	"datacontenttype", "dataschema", "data", "data_base64"}

// Validate reports what makes e invalid, as an error wrapping
// ErrInvalidCloudEvent: a missing required attribute (ID, Source, Type,
// SpecVersion other than empty or "1.0"), a Source, DataSchema or
// DataContentType that does not parse, an extension name that is not
// lower-case letters and digits, or one of the core attributes', or a
// value that is not UTF-8.
func (e *CloudEvent) Validate() error {
	if problems := e.problems(false); len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidCloudEvent, strings.Join(problems, "; "))
	}
	return nil
}

// problems lists what makes e invalid; read: e was read from a record,
// which must name its specversion.
func (e *CloudEvent) problems(read bool) []string {
	var problems, missing []string
	if read && e.SpecVersion == "" {
		missing = append(missing, "specversion")
	}
	for _, a := range []struct{ name, value string }{{"id", e.ID}, {"source", e.Source}, {"type", e.Type}} {
		if a.value == "" {
			missing = append(missing, a.name)
		}
	}
	if len(missing) == 1 {
		problems = append(problems, "missing required attribute "+missing[0])
	} else if len(missing) > 1 {
		problems = append(problems, "missing required attributes "+strings.Join(missing, ", "))
	}
	if e.SpecVersion != "" && e.SpecVersion != CloudEventsSpecVersion {
		problems = append(problems, fmt.Sprintf("specversion %q is not %s", e.SpecVersion, CloudEventsSpecVersion))
	}
	if e.Source != "" {
		if _, err := url.Parse(e.Source); err != nil {
			problems = append(problems, fmt.Sprintf("source %q is not a URI reference", e.Source))
		}
	}
	if e.DataSchema != "" {
		if u, err := url.Parse(e.DataSchema); err != nil || !u.IsAbs() {
			problems = append(problems, fmt.Sprintf("dataschema %q is not an absolute URI", e.DataSchema))
		}
	}
	if e.DataContentType != "" {
		if mt, _, err := mime.ParseMediaType(e.DataContentType); err != nil || !strings.Contains(mt, "/") {
			problems = append(problems, fmt.Sprintf("datacontenttype %q is not a media type", e.DataContentType))
		}
	}
	for _, a := range []struct{ name, value string }{{"id", e.ID}, {"source", e.Source}, {"type", e.Type},
		{"subject", e.Subject}, {"datacontenttype", e.DataContentType}, {"dataschema", e.DataSchema}} {
		if !utf8.ValidString(a.value) {
			problems = append(problems, a.name+" is not UTF-8")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.Extensions)) {
		switch {
		case !validAttributeName(name):
			problems = append(problems, fmt.Sprintf("extension name %q is not lower-case letters and digits", name))
		case slices.Contains(coreAttributes, name):
			problems = append(problems, fmt.Sprintf("extension %q has the name of a core attribute", name))
		case !utf8.ValidString(e.Extensions[name]):
			problems = append(problems, fmt.Sprintf("extension %q is not UTF-8", name))
		}
	}
	return problems
}

func validAttributeName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Record returns e as a record in the binary content mode of the
// CloudEvents Kafka protocol binding: each attribute in a header named
// ce_<attribute> (extensions too), Time in RFC 3339, DataContentType in the
// content-type header, Data as the value, and the partitionkey extension,
// if set, as the key. The record also gets a message-id header of Source
// and ID joined by a space, which identifies the event, so that the
// stream's dedup window drops an event published twice and Idempotent
// consumers handle it once. It fails if e is not valid (see Validate).
func (e *CloudEvent) Record() (Record, error) {
	if err := e.Validate(); err != nil {
		return Record{}, err
	}
	headers := make([]Header, 0, 8+len(e.Extensions))
	add := func(name, value string) {
		if value != "" {
			headers = append(headers, Header{Key: name, Value: []byte(value)})
		}
	}
	add(HeaderCESpecVersion, CloudEventsSpecVersion)
	add(HeaderCEID, e.ID)
	add(HeaderCESource, e.Source)
	add(HeaderCEType, e.Type)
	add(HeaderCESubject, e.Subject)
	if !e.Time.IsZero() {
		add(HeaderCETime, e.Time.Format(time.RFC3339Nano))
	}
	add(HeaderCEDataSchema, e.DataSchema)
	for _, name := range slices.Sorted(maps.Keys(e.Extensions)) {
		headers = append(headers, Header{Key: CloudEventsHeaderPrefix + name, Value: []byte(e.Extensions[name])})
	}
	add(HeaderContentType, e.DataContentType)
	add(HeaderMessageID, e.Source+" "+e.ID)
	rec := Record{Value: e.Data, Headers: headers}
	if pk, ok := e.Extensions[PartitionKeyExtension]; ok {
		rec.Key = []byte(pk)
	}
	return rec, nil
}

// CloudEvent reads the CloudEvent a record holds: in structured mode if
// its content-type is application/cloudevents+json (the JSON event format),
// in binary mode otherwise (attributes in ce_ headers, data the value,
// content-type the datacontenttype). It fails with an error wrapping
// ErrInvalidCloudEvent if the record is not a CloudEvent, lacks a required
// attribute (naming it), has one that is malformed, or is in a structured
// format other than JSON. Messages have the method too: m.CloudEvent().
func (r *Record) CloudEvent() (*CloudEvent, error) {
	if ct, ok := r.Header(HeaderContentType); ok {
		if mt, _, err := mime.ParseMediaType(string(ct)); err == nil && strings.HasPrefix(mt, "application/cloudevents") {
			if mt != CloudEventsJSON {
				return nil, fmt.Errorf("%w: structured mode in %s, not %s", ErrInvalidCloudEvent, mt, CloudEventsJSON)
			}
			return parseStructured(r.Value)
		}
	}
	e := &CloudEvent{Data: r.Value}
	var timeText string
	var found bool
	for _, h := range r.Headers {
		name := strings.ToLower(h.Key)
		if name == HeaderContentType {
			if e.DataContentType == "" {
				e.DataContentType = string(h.Value)
			}
			continue
		}
		attr, ok := strings.CutPrefix(name, CloudEventsHeaderPrefix)
		if !ok {
			continue
		}
		found = true
		value := string(h.Value)
		var field *string
		switch attr {
		case "specversion":
			field = &e.SpecVersion
		case "id":
			field = &e.ID
		case "source":
			field = &e.Source
		case "type":
			field = &e.Type
		case "subject":
			field = &e.Subject
		case "dataschema":
			field = &e.DataSchema
		case "time":
			field = &timeText
		case "datacontenttype":
			continue // the content-type header carries it
		default:
			if e.Extensions == nil {
				e.Extensions = make(map[string]string)
			}
			if _, dup := e.Extensions[attr]; !dup {
				e.Extensions[attr] = value
			}
			continue
		}
		if *field == "" {
			*field = value
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: the record has no ce_ headers and its content-type is not %s", ErrInvalidCloudEvent, CloudEventsJSON)
	}
	if problems := e.finishRead(timeText); len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidCloudEvent, strings.Join(problems, "; "))
	}
	return e, nil
}

// finishRead parses the time of an event read from a record, and lists
// what makes the event invalid.
func (e *CloudEvent) finishRead(timeText string) []string {
	var problems []string
	if timeText != "" {
		t, err := time.Parse(time.RFC3339Nano, timeText)
		if err != nil {
			problems = append(problems, fmt.Sprintf("time %q is not an RFC 3339 timestamp", timeText))
		}
		e.Time = t
	}
	return append(e.problems(true), problems...)
}

// parseStructured reads a CloudEvent in the JSON event format.
func parseStructured(value []byte) (*CloudEvent, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(value, &members); err != nil {
		return nil, fmt.Errorf("%w: structured mode: %v", ErrInvalidCloudEvent, err)
	}
	e := &CloudEvent{}
	var problems []string
	var timeText string
	str := func(name string, field *string) {
		raw, ok := members[name]
		if !ok || isJSONNull(raw) {
			return
		}
		if err := json.Unmarshal(raw, field); err != nil {
			problems = append(problems, name+" is not a JSON string")
		}
	}
	str("specversion", &e.SpecVersion)
	str("id", &e.ID)
	str("source", &e.Source)
	str("type", &e.Type)
	str("subject", &e.Subject)
	str("time", &timeText)
	str("datacontenttype", &e.DataContentType)
	str("dataschema", &e.DataSchema)

	rawData, hasData := members["data"]
	rawBase64, hasBase64 := members["data_base64"]
	switch {
	case hasData && hasBase64:
		problems = append(problems, "both data and data_base64")
	case hasBase64 && !isJSONNull(rawBase64):
		var text string
		if err := json.Unmarshal(rawBase64, &text); err != nil {
			problems = append(problems, "data_base64 is not a JSON string")
		} else if e.Data, err = base64.StdEncoding.DecodeString(text); err != nil {
			problems = append(problems, "data_base64 is not base64")
		}
	case hasData:
		if e.DataContentType == "" {
			// The format implies JSON, which the content-type of a
			// binary-mode record would have to say.
			e.DataContentType = "application/json"
		}
		if isJSONContentType(e.DataContentType) {
			e.Data = bytes.Clone(rawData)
		} else {
			var text string
			if err := json.Unmarshal(rawData, &text); err != nil {
				problems = append(problems, fmt.Sprintf("data of content type %s is not a JSON string", e.DataContentType))
			}
			e.Data = []byte(text)
		}
	}

	for _, name := range slices.Sorted(maps.Keys(members)) {
		raw := members[name]
		if slices.Contains(coreAttributes, name) || isJSONNull(raw) {
			continue
		}
		if e.Extensions == nil {
			e.Extensions = make(map[string]string)
		}
		var text string
		var number json.Number
		var flag bool
		switch {
		case json.Unmarshal(raw, &text) == nil:
			e.Extensions[name] = text
		case json.Unmarshal(raw, &number) == nil:
			e.Extensions[name] = number.String()
		case json.Unmarshal(raw, &flag) == nil:
			e.Extensions[name] = fmt.Sprint(flag)
		default:
			problems = append(problems, fmt.Sprintf("extension %q is not a string, number or boolean", name))
		}
	}
	problems = append(e.finishRead(timeText), problems...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: structured mode: %s", ErrInvalidCloudEvent, strings.Join(problems, "; "))
	}
	return e, nil
}

func isJSONNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// isJSONContentType reports whether a media type declares JSON: */json or
// */*+json.
func isJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	_, sub, ok := strings.Cut(mt, "/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// PublishEvents publishes CloudEvents to a stream, each as Record makes
// it, and returns where each landed, as Publish does. It fails without
// publishing anything if one of them is not valid.
func (c *Client) PublishEvents(ctx context.Context, stream string, events ...CloudEvent) ([]PublishResult, error) {
	records := make([]Record, len(events))
	for i := range events {
		rec, err := events[i].Record()
		if err != nil {
			return nil, fmt.Errorf("publish to %q: event %d: %w", stream, i, err)
		}
		records[i] = rec
	}
	return c.Publish(ctx, stream, records...)
}

// SendEvent is Send of the record of a CloudEvent; cb gets the error of an
// event that is not valid.
func (p *Producer) SendEvent(ctx context.Context, e CloudEvent, cb func(PublishResult, error)) {
	rec, err := e.Record()
	if err != nil {
		if cb != nil {
			cb(PublishResult{}, fmt.Errorf("send to %q: %w", p.stream, err))
		}
		return
	}
	p.Send(ctx, rec, cb)
}

// CloudEventHandler returns a Handler that reads each message's CloudEvent
// (see Record.CloudEvent) and passes it to fn with the message. A message
// that is not a valid CloudEvent is, in shared mode, rejected at once (it
// goes to the dead-letter stream with the reason, since redelivering it
// cannot help); in the other modes it fails the handler with an error
// wrapping ErrInvalidCloudEvent, which stops the consumer. To skip such
// records instead, read m.CloudEvent() in a Handler of your own.
func CloudEventHandler(fn func(ctx context.Context, e *CloudEvent, m *Message) error) Handler {
	return func(ctx context.Context, m *Message) error {
		e, err := m.CloudEvent()
		if err != nil {
			err = fmt.Errorf("%s/%d@%d: %w", m.Stream, m.Partition, m.Offset, err)
			if m.sess != nil && m.sess.cons.cfg.mode == modeShared {
				return m.Reject(ctx, err.Error())
			}
			return err
		}
		return fn(ctx, e, m)
	}
}
