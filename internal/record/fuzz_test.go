package record

import (
	"encoding/binary"
	"slices"
	"testing"
)

// fuzzLimit keeps decompression bombs cheap while fuzzing.
const fuzzLimit = 1 << 20

// FuzzDecode feeds arbitrary bytes to Validate and the Iterator. Nothing may
// panic, and whatever decodes must survive re-encoding: the records, encoded
// again with the batch's own options, decode to the same records.
//
// Random bytes almost never carry a valid CRC, so each input is also tried
// with its length field and CRC repaired, which lets the fuzzer reach the
// decompressors and the record decoder.
func FuzzDecode(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(fuzzDecode)
}

func fuzzDecode(t *testing.T, data []byte) {
	checkDecode(t, data)
	if len(data) >= HeaderSize {
		fixed := slices.Clone(data)
		binary.BigEndian.PutUint32(fixed[offBatchLength:], uint32(len(fixed)-lengthFieldEnd))
		fixed[offMagic] = 2
		checkDecode(t, refix(fixed))
	}
}

func checkDecode(t *testing.T, data []byte) {
	h, verr := Validate(data)
	it := Iterator{MaxDecompressed: fuzzLimit}
	if err := it.Reset(data); err != nil {
		return
	}
	if verr != nil {
		t.Fatalf("Reset accepted a batch Validate rejects: %v", verr)
	}
	var recs []Record
	var r Record
	for it.Next(&r) {
		recs = append(recs, cloneRecord(r))
	}
	if it.Err() != nil {
		return
	}
	if len(recs) != int(h.RecordCount) {
		t.Fatalf("decoded %d records, header says %d", len(recs), h.RecordCount)
	}
	all, err := DecodeRecords(data, nil)
	if err != nil {
		t.Fatalf("Iterator decoded the batch, DecodeRecords failed: %v", err)
	}
	if d := diffRecords(all, recs); d != "" {
		t.Fatalf("DecodeRecords and Iterator differ: %s", d)
	}
	if len(recs) == 0 {
		return // AppendBatch does not write empty batches
	}

	again, err := AppendBatch(nil, h.Options(), recs)
	if err != nil {
		t.Fatalf("re-encoding decoded records: %v", err)
	}
	got, err := iterate(again, fuzzLimit)
	if err != nil {
		t.Fatalf("decoding the re-encoded batch: %v", err)
	}
	if d := diffRecords(got, recs); d != "" {
		t.Fatalf("re-encoded batch decodes differently: %s", d)
	}
}

// fuzzSeeds returns small valid batches of every codec and option, and
// broken ones.
func fuzzSeeds(tb testing.TB) [][]byte {
	recs := sequential([]Record{
		{Timestamp: 1_700_000_000_000, Key: []byte("k"), Value: []byte("value"), Headers: []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
		{Timestamp: 1_699_999_999_000, Value: []byte{}},
		{Timestamp: 1_700_000_000_500, Key: []byte{}},
	})
	var seeds [][]byte
	for _, c := range codecs {
		opts := DefaultBatchOptions()
		opts.Compression = c
		seeds = append(seeds, mustBatch(tb, opts, recs))
		seeds = append(seeds, mustBatch(tb, opts, recs[:1]))
	}
	// Foreign framing: xerial snappy, lz4 with checksums, zstd without a
	// content size.
	for _, c := range codecs[1:] {
		seeds = append(seeds, kmsgBatch(tb, 0, recs, c, independentCompress))
	}
	h := Header{ProducerID: 9, ProducerEpoch: 1, BaseSequence: 5, Attributes: TransactionalFlag | TimestampLogAppend}
	opts := h.Options()
	seeds = append(seeds, mustBatch(tb, opts, recs))
	seeds = append(seeds, rawBatch(nil, 0, 0, CompressionNone))

	valid := seeds[0]
	badCRC := slices.Clone(valid)
	badCRC[len(badCRC)-1] ^= 1
	badMagic := slices.Clone(valid)
	badMagic[offMagic] = 1
	seeds = append(seeds,
		nil,
		valid[:HeaderSize],
		valid[:len(valid)-1],
		badCRC,
		badMagic,
		rawBatch([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, 0, CompressionNone),
		rawBatch([]byte{0x0c, 0, 0, 0, 1, 1, 0, 0xaa}, 1, 0, CompressionNone),
		rawBatch([]byte("not zstd at all"), 1, 0, CompressionZstd),
	)
	return seeds
}

func TestFuzzSeeds(t *testing.T) {
	for _, seed := range fuzzSeeds(t) {
		checkDecode(t, seed)
	}
}
