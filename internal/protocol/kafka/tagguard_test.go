package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// flexibleVersions lists every (key, version) in apis that is flexible.
func flexibleVersions() [][2]int16 {
	var out [][2]int16
	for key, a := range apis {
		for v := a.min; v <= a.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			if req.IsFlexible() {
				out = append(out, [2]int16{key, v})
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]int16) int { return int(a[0]-b[0])*100 + int(a[1]-b[1]) })
	return out
}

// requestFrameFor is a request frame (without its size) with header v2
// and client id "c" around body.
func requestFrameFor(key, version int16, body []byte) []byte {
	var frame []byte
	frame = binary.BigEndian.AppendUint16(frame, uint16(key))
	frame = binary.BigEndian.AppendUint16(frame, uint16(version))
	frame = binary.BigEndian.AppendUint32(frame, 7)
	frame = binary.BigEndian.AppendUint16(frame, 1)
	frame = append(frame, 'c', 0)
	return append(frame, body...)
}

// TestTagGuardFuzzFindings are the frames FuzzParseRequest found: a
// tagged-field count of 0xFFFFFFFF (1m53s in kmsg before the guard) and
// one of about 91 million (2.4 s). Both are refused by the guard.
func TestTagGuardFuzzFindings(t *testing.T) {
	for _, frame := range []string{
		"\x00\x10\x00\x03\x00\x03\x00\x00\x00\x00\x00\xff\xff\xff\xff\x0f",
		"\x00\x10\x00\x03\x00\x03\x00\x00\x00\x00\x00\x9f\x9f\xcd\xab\x00",
	} {
		req, err := parseRequest([]byte(frame))
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, errTagCount) {
			t.Errorf("%q: request %v, error %v; want ErrMalformed from the tag guard", frame, req, err)
		}
	}
}

// TestTagGuardLayouts checks that every flexible (key, version) Weir serves
// has a layout, and the layout of a default request reads it exactly.
func TestTagGuardLayouts(t *testing.T) {
	versions := flexibleVersions()
	if len(versions) < 50 {
		t.Fatalf("only %d flexible versions", len(versions))
	}
	for _, kv := range versions {
		req := kmsg.RequestForKey(kv[0])
		req.SetVersion(kv[1])
		body := req.AppendTo(nil)
		if end, err := requestLayouts[kv[0]][kv[1]].walk(body, 0, nil); err != nil || end != len(body) {
			t.Errorf("%s v%d: walk ends at %d of %d, %v", kmsg.NameForKey(kv[0]), kv[1], end, len(body), err)
		}
	}
	// Non-flexible versions have no layout and are not walked.
	if requestLayouts[0][8] != nil || requestLayouts[0][9] == nil {
		t.Error("Produce v8 has a layout or v9 has none")
	}
	if err := checkFlexibleBody(0, 8, nil); err == nil {
		t.Error("checkFlexibleBody accepted a version without a layout")
	}
}

// randomFill sets every field of the struct v to random values: integers,
// strings and bytes (sometimes null), arrays of 0 to 3 elements filled the
// same way, tagged structs, and unknown tags. A quarter of the fields keep
// their default, so tagged fields are sometimes left out.
func randomFill(r *rand.Rand, v reflect.Value, depth int) {
	for i := range v.NumField() {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		if name == "Version" {
			continue
		}
		if name == "UnknownTags" {
			tags := f.Addr().Interface().(*kmsg.Tags)
			for range r.IntN(3) {
				val := make([]byte, r.IntN(4))
				for j := range val {
					val[j] = byte(r.Uint32())
				}
				tags.Set(uint32(10000+r.IntN(1000)), val)
			}
			continue
		}
		if r.IntN(4) == 0 {
			continue
		}
		randomValue(r, f, depth)
	}
}

func randomValue(r *rand.Rand, f reflect.Value, depth int) {
	switch f.Kind() {
	case reflect.Bool:
		f.SetBool(r.IntN(2) == 0)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(int64(r.Uint64()) >> r.IntN(64))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(r.Uint64() >> r.IntN(64))
	case reflect.Float64:
		f.SetFloat(r.Float64())
	case reflect.Array:
		for i := range f.Len() {
			f.Index(i).SetUint(uint64(r.Uint32()))
		}
	case reflect.String:
		f.SetString(randomString(r))
	case reflect.Pointer:
		if r.IntN(3) == 0 {
			f.Set(reflect.Zero(f.Type()))
			return
		}
		s := randomString(r)
		f.Set(reflect.ValueOf(&s))
	case reflect.Slice:
		if f.Type().Elem().Kind() == reflect.Uint8 {
			if r.IntN(4) == 0 {
				f.SetBytes(nil)
				return
			}
			b := make([]byte, r.IntN(20))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			f.SetBytes(b)
			return
		}
		n := r.IntN(4)
		if depth > 4 {
			n = 0
		}
		s := reflect.MakeSlice(f.Type(), n, n)
		for i := range n {
			if e := s.Index(i); e.Kind() == reflect.Struct {
				setDefault(e)
				randomFill(r, e, depth+1)
			} else {
				randomValue(r, e, depth+1)
			}
		}
		f.Set(s)
	case reflect.Struct:
		randomFill(r, f, depth+1)
	}
}

func randomString(r *rand.Rand) string {
	b := make([]byte, r.IntN(6))
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// TestTagGuardAcceptsValidRequests builds random valid requests with kmsg
// for every flexible (key, version) Weir serves: the guard reads each to
// its last byte, and parseRequest returns a body that encodes to the same
// bytes.
func TestTagGuardAcceptsValidRequests(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 2026))
	iterations := 150
	if testing.Short() {
		iterations = 20
	}
	for _, kv := range flexibleVersions() {
		key, version := kv[0], kv[1]
		name := fmt.Sprintf("%s v%d", kmsg.NameForKey(key), version)
		for range iterations {
			req := kmsg.RequestForKey(key)
			randomFill(r, reflect.ValueOf(req).Elem(), 0)
			req.SetVersion(version)
			body := req.AppendTo(nil)
			end, err := requestLayouts[key][version].walk(body, 0, nil)
			if err != nil || end != len(body) {
				t.Fatalf("%s: the guard read %d of %d bytes, %v\nbody %x", name, end, len(body), err, body)
			}
			parsed, err := parseRequest(requestFrameFor(key, version, body))
			if err != nil {
				t.Fatalf("%s: %v\nbody %x", name, err, body)
			}
			if again := parsed.body.AppendTo(nil); !bytes.Equal(again, body) {
				t.Fatalf("%s: decoded and encoded again\n got %x\nwant %x", name, again, body)
			}
		}
	}
}

// withHugeTagCount returns body with the tagged-field count of the section
// holding the unknown tag (marker key, value "MARK") set to 0xFFFFFFFF.
func withHugeTagCount(t *testing.T, body []byte) []byte {
	t.Helper()
	entry := []byte{0xd0, 0x86, 0x03, 4, 'M', 'A', 'R', 'K'} // key 50000, size 4
	i := bytes.Index(body, entry)
	if i < 1 || bytes.Count(body, entry) != 1 || body[i-1] != 1 {
		t.Fatalf("marker tag not found once after a count of 1 in %x", body)
	}
	out := slices.Clone(body[:i-1])
	out = append(out, 0xff, 0xff, 0xff, 0xff, 0x0f)
	return append(out, body[i:]...)
}

func markTags(tags *kmsg.Tags) { tags.Set(50000, []byte("MARK")) }

// TestTagGuardRefusesHugeTagCountAtEveryDepth sets the tagged-field count
// of one section to 0xFFFFFFFF, at the top level and inside array elements
// at each depth, for several APIs: parseRequest refuses each with the
// guard's error, and without the change the same request is accepted.
func TestTagGuardRefusesHugeTagCountAtEveryDepth(t *testing.T) {
	produce := func(mark func(*kmsg.ProduceRequest)) kmsg.Request {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		for _, topic := range []string{"a", "b"} {
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = topic
			for p := range int32(2) {
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition = p
				rp.Records = []byte("records")
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		mark(req)
		return req
	}
	fetch := func(mark func(*kmsg.FetchRequest)) kmsg.Request {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "a"
		rt.Partitions = append(rt.Partitions, kmsg.NewFetchRequestTopicPartition(), kmsg.NewFetchRequestTopicPartition())
		req.Topics = append(req.Topics, rt)
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic = "b"
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
		mark(req)
		return req
	}
	joinGroup := func(mark func(*kmsg.JoinGroupRequest)) kmsg.Request {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 6
		req.Group, req.ProtocolType = "g", "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 1}
		req.Protocols = append(req.Protocols, p)
		mark(req)
		return req
	}
	offsetCommit := func(mark func(*kmsg.OffsetCommitRequest)) kmsg.Request {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = 8
		req.Group = "g"
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "a"
		rt.Partitions = append(rt.Partitions, kmsg.NewOffsetCommitRequestTopicPartition())
		req.Topics = append(req.Topics, rt)
		mark(req)
		return req
	}
	cases := []struct {
		name string
		req  kmsg.Request
	}{
		{"Produce top level", produce(func(r *kmsg.ProduceRequest) { markTags(&r.UnknownTags) })},
		{"Produce topic", produce(func(r *kmsg.ProduceRequest) { markTags(&r.Topics[1].UnknownTags) })},
		{"Produce partition", produce(func(r *kmsg.ProduceRequest) { markTags(&r.Topics[1].Partitions[0].UnknownTags) })},
		{"Fetch top level", fetch(func(r *kmsg.FetchRequest) { markTags(&r.UnknownTags) })},
		{"Fetch topic", fetch(func(r *kmsg.FetchRequest) { markTags(&r.Topics[0].UnknownTags) })},
		{"Fetch partition", fetch(func(r *kmsg.FetchRequest) { markTags(&r.Topics[0].Partitions[1].UnknownTags) })},
		{"Fetch forgotten topic", fetch(func(r *kmsg.FetchRequest) { markTags(&r.ForgottenTopics[0].UnknownTags) })},
		{"JoinGroup top level", joinGroup(func(r *kmsg.JoinGroupRequest) { markTags(&r.UnknownTags) })},
		{"JoinGroup protocol", joinGroup(func(r *kmsg.JoinGroupRequest) { markTags(&r.Protocols[0].UnknownTags) })},
		{"OffsetCommit partition", offsetCommit(func(r *kmsg.OffsetCommitRequest) { markTags(&r.Topics[0].Partitions[0].UnknownTags) })},
	}
	for _, c := range cases {
		body := c.req.AppendTo(nil)
		key, version := c.req.Key(), c.req.GetVersion()
		if _, err := parseRequest(requestFrameFor(key, version, body)); err != nil {
			t.Fatalf("%s: the unchanged request: %v", c.name, err)
		}
		_, err := parseRequest(requestFrameFor(key, version, withHugeTagCount(t, body)))
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, errTagCount) {
			t.Errorf("%s: error %v, want the tag guard's", c.name, err)
		}
	}

	// Inside a tagged field: Fetch's ReplicaState (tag 1) is read from a
	// reader bounded by the tag's size, which grows with the count.
	req := fetch(func(r *kmsg.FetchRequest) {
		r.ReplicaState.ID, r.ReplicaState.Epoch = 0x0badcafe, 7
		markTags(&r.ReplicaState.UnknownTags)
	}).(*kmsg.FetchRequest)
	body := req.AppendTo(nil)
	if _, err := parseRequest(requestFrameFor(1, 12, body)); err != nil {
		t.Fatalf("Fetch with ReplicaState: %v", err)
	}
	huge := withHugeTagCount(t, body)
	i := bytes.Index(huge, []byte{0x0b, 0xad, 0xca, 0xfe})
	if i < 1 || huge[i-1] != 4+8+1+8 {
		t.Fatalf("ReplicaState's size not found in %x", huge)
	}
	huge[i-1] += 4
	if _, err := parseRequest(requestFrameFor(1, 12, huge)); !errors.Is(err, ErrMalformed) || !errors.Is(err, errTagCount) {
		t.Errorf("Fetch ReplicaState: error %v, want the tag guard's", err)
	}
}

// TestTagGuardCountBoundary: a section whose entries take exactly two
// bytes each (a key and an empty value) is valid at the largest count the
// bytes allow and refused at one more.
func TestTagGuardCountBoundary(t *testing.T) {
	const entries = 40
	body := []byte{1, entries} // ListGroups v4: an empty states filter, then the tag count
	for i := range entries {
		body = append(body, byte(60+i), 0) // unknown keys 60..99, empty values
	}
	req, err := parseRequest(requestFrameFor(16, 4, body))
	if err != nil {
		t.Fatalf("valid unknown tags: %v", err)
	}
	if n := req.body.(*kmsg.ListGroupsRequest).UnknownTags.Len(); n != entries {
		t.Fatalf("%d unknown tags decoded, want %d", n, entries)
	}
	body[1]++ // one entry more than the bytes could hold
	if _, err := parseRequest(requestFrameFor(16, 4, body)); !errors.Is(err, errTagCount) {
		t.Fatalf("count %d with %d bytes left: %v", entries+1, 2*entries, err)
	}
	// A body cut inside the entries is refused as truncated, as kmsg would.
	if _, err := parseRequest(requestFrameFor(16, 4, body[:len(body)-1])); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
}

// TestReadUvarint checks the varint reader against kmsg's rules: at most
// five bytes, the fifth at most 0x0f.
func TestReadUvarint(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint32
		n    int
	}{
		{"\x00", 0, 1},
		{"\x7f", 127, 1},
		{"\x80\x01", 128, 2},
		{"\xff\xff\xff\xff\x0f", 0xffffffff, 5},
		{"\xff\xff\xff\xff\x10", 0, 0},
		{"\x80\x80\x80\x80\x80\x01", 0, 0},
		{"\x80", 0, 0},
		{"", 0, 0},
	} {
		if got, n := readUvarint([]byte(c.in)); got != c.want || n != c.n {
			t.Errorf("%x: %d, %d; want %d, %d", c.in, got, n, c.want, c.n)
		}
	}
}

// FuzzTagGuard checks the guard against kmsg on arbitrary bodies of every
// flexible (key, version): the guard accepts exactly what kmsg decodes,
// except that it refuses impossible tag counts without asking kmsg (which
// would spin on them).
func FuzzTagGuard(f *testing.F) {
	versions := flexibleVersions()
	for i, kv := range versions {
		req := kmsg.RequestForKey(kv[0])
		req.SetVersion(kv[1])
		f.Add(uint16(i), req.AppendTo(nil))
	}
	f.Add(uint16(0), []byte("\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, which uint16, body []byte) {
		kv := versions[int(which)%len(versions)]
		err := checkFlexibleBody(kv[0], kv[1], body)
		if errors.Is(err, errTagCount) {
			return
		}
		req := kmsg.RequestForKey(kv[0])
		req.SetVersion(kv[1])
		kerr := req.ReadFrom(body)
		if (err == nil) != (kerr == nil) {
			t.Fatalf("%s v%d: guard %v, kmsg %v", kmsg.NameForKey(kv[0]), kv[1], err, kerr)
		}
	})
}

// benchmarkGuard measures the guard on one request's body.
func benchmarkGuard(b *testing.B, req kmsg.Request) {
	body := req.AppendTo(nil)
	key, version := req.Key(), req.GetVersion()
	if err := checkFlexibleBody(key, version, body); err != nil {
		b.Fatal(err)
	}
	b.Run("guard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := checkFlexibleBody(key, version, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	// kmsg's decoding of the same body, for scale.
	b.Run("kmsg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := kmsg.RequestForKey(key)
			r.SetVersion(version)
			if err := r.ReadFrom(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTagGuardProduce: a Produce v9 of one topic and three
// partitions, each with a 16 KiB batch (the guard skips the batches).
func BenchmarkTagGuardProduce(b *testing.B) {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "orders"
	for p := range int32(3) {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = make([]byte, 16<<10)
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	benchmarkGuard(b, req)
}

// BenchmarkTagGuardFetch: a Fetch v12 of one topic and ten partitions, as
// a consumer's full fetch.
func BenchmarkTagGuardFetch(b *testing.B) {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 500, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "orders"
	for p := range int32(10) {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, 123456, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	benchmarkGuard(b, req)
}

// TestTagGuardDerivedLayouts compares a few derived layouts with the
// protocol's definitions: Produce v9 and v13 (topic ids), and Fetch v12
// and v15 (ReplicaID left the body for the tagged ReplicaState; the
// partitions' tags ReplicaDirectoryID and HighWatermark).
func TestTagGuardDerivedLayouts(t *testing.T) {
	for _, c := range []struct {
		key, version int16
		want         string
	}{
		{0, 9, "nul skip6 [str [skip4 nul tags()] tags()] tags()"},
		{0, 13, "nul skip6 [skip16 [skip4 nul tags()] tags()] tags()"},
		{1, 12, "skip25 [str [skip32 tags(0:skip16 1:skip8)] tags()] [str [skip4] tags()] str tags(0:nul 1:{skip12 tags()})"},
		{1, 15, "skip21 [skip16 [skip32 tags(0:skip16 1:skip8)] tags()] [skip16 [skip4] tags()] str tags(0:nul 1:{skip12 tags()})"},
		{16, 3, "tags()"},
		{16, 4, "[str] tags()"},
	} {
		if got := describeLayout(requestLayouts[c.key][c.version]); got != c.want {
			t.Errorf("%s v%d:\n got %s\nwant %s", kmsg.NameForKey(c.key), c.version, got, c.want)
		}
	}
}

// describeLayout writes a layout out: skipN, str (compact string), nul
// (compact nullable string or bytes), [array element], {struct}, and
// tags(key:value ...) for a tagged-field section with its known tags.
func describeLayout(l *wireLayout) string {
	var parts []string
	for _, op := range l.ops {
		switch op.kind {
		case opSkip:
			parts = append(parts, fmt.Sprintf("skip%d", op.size))
		case opString:
			parts = append(parts, "str")
		case opNullable:
			parts = append(parts, "nul")
		case opArray:
			parts = append(parts, "["+describeLayout(op.elem)+"]")
		case opStruct:
			parts = append(parts, "{"+describeLayout(op.elem)+"}")
		}
	}
	if l.tagged {
		var known []string
		for _, k := range l.known {
			known = append(known, fmt.Sprintf("%d:%s", k.key, describeLayout(k.value)))
		}
		parts = append(parts, "tags("+strings.Join(known, " ")+")")
	}
	return strings.Join(parts, " ")
}

// BenchmarkTagGuardDerive derives the layouts of every flexible request
// (what the package's init does once).
func BenchmarkTagGuardDerive(b *testing.B) {
	versions := flexibleVersions()
	for b.Loop() {
		for _, kv := range versions {
			if _, err := deriveRequestLayout(kv[0], kv[1]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
