package record

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
)

func TestCompressRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"empty":               {},
		"one byte":            {42},
		"text":                []byte("the quick brown fox jumps over the lazy dog"),
		"64KiB+1 compresses":  payload(64<<10+1, true),
		"1MiB compresses":     payload(1<<20, true),
		"300KiB incompressib": payload(300<<10, false),
	}
	for _, c := range codecs {
		for name, src := range inputs {
			t.Run(c.String()+"/"+name, func(t *testing.T) {
				prefix := []byte("prefix")
				comp, err := Compress(append([]byte{}, prefix...), c, src)
				if err != nil {
					t.Fatalf("Compress: %v", err)
				}
				if !bytes.HasPrefix(comp, prefix) {
					t.Fatal("Compress did not append")
				}
				comp = comp[len(prefix):]
				if got := independentDecompress(t, c, comp); !bytes.Equal(got, src) {
					t.Fatalf("independent decoder read %d bytes, want %d", len(got), len(src))
				}
				out, err := Decompress(append([]byte{}, prefix...), c, comp, 0)
				if err != nil {
					t.Fatalf("Decompress: %v", err)
				}
				if !bytes.Equal(out, append(append([]byte{}, prefix...), src...)) {
					t.Fatalf("Decompress gave %d bytes, want %d after the prefix", len(out)-len(prefix), len(src))
				}
			})
		}
	}
}

// Input written the way other clients write it.
func TestDecompressForeign(t *testing.T) {
	src := payload(200<<10, true) // several xerial chunks (32 KiB each)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name string
		c    Compression
		in   []byte
		want []byte
	}{
		{"gzip std", CompressionGzip, independentCompress(t, CompressionGzip, src), src},
		{"gzip two members", CompressionGzip, append(gz(src[:1000]), gz(src[1000:])...), src},
		{"snappy xerial", CompressionSnappy, xerial.Encode(nil, src), src},
		{"snappy xerial empty", CompressionSnappy, xerial.Encode(nil, nil), []byte{}},
		{"snappy raw", CompressionSnappy, snappy.Encode(nil, src), src},
		{"lz4 4MiB blocks with checksums", CompressionLZ4, independentCompress(t, CompressionLZ4, src), src},
		{"zstd stream without content size", CompressionZstd, independentCompress(t, CompressionZstd, src), src},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decompress(nil, tc.c, tc.in, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

// Kafka's Java client writes LZ4 frames with 64 KiB independent blocks and
// no checksums; ours match, so that every reader accepts them.
func TestLZ4FrameDescriptor(t *testing.T) {
	out, err := Compress(nil, CompressionLZ4, payload(1000, true))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte{0x04, 0x22, 0x4d, 0x18}) {
		t.Fatalf("no LZ4 frame magic: % x", out[:4])
	}
	// FLG: version 01, independent blocks, no block checksum, no content
	// size, no content checksum. BD: 64 KiB maximum block size.
	if out[4] != 0x60 || out[5] != 0x40 {
		t.Fatalf("FLG, BD = %#x, %#x; want 0x60, 0x40", out[4], out[5])
	}
}

func TestDecompressLimit(t *testing.T) {
	const size = 2 << 20
	zeros := make([]byte, size)
	for _, c := range codecs {
		encodings := map[string][]byte{"ours": mustCompress(t, c, zeros), "foreign": independentCompress(t, c, zeros)}
		for who, comp := range encodings {
			t.Run(c.String()+"/"+who, func(t *testing.T) {
				for _, tc := range []struct {
					limit int
					ok    bool
				}{{size, true}, {size + 1, true}, {size - 1, false}, {1 << 20, false}, {1, false}} {
					got, err := Decompress([]byte("x"), c, comp, tc.limit)
					if tc.ok {
						if err != nil || len(got) != size+1 {
							t.Errorf("limit %d: %d bytes, %v", tc.limit, len(got), err)
						}
						continue
					}
					if !errors.Is(err, ErrTooLarge) {
						t.Errorf("limit %d: err = %v, want ErrTooLarge", tc.limit, err)
					}
					if string(got) != "x" {
						t.Errorf("limit %d: dst not restored: %d bytes", tc.limit, len(got))
					}
				}
			})
		}
	}
}

// A decompression bomb must fail having allocated about the limit, not the
// size it claims or would inflate to.
func TestDecompressionBombMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds 128 MiB bombs; the race detector makes that slow and skews allocation counts")
	}
	const limit = 1 << 20
	zeros := make([]byte, 128<<20)
	for _, c := range codecs[1:] {
		for who, bomb := range map[string][]byte{"ours": mustCompress(t, c, zeros), "foreign": independentCompress(t, c, zeros)} {
			t.Run(c.String()+"/"+who, func(t *testing.T) {
				// As a batch, through the Iterator.
				batch := rawBatch(bomb, 1, 0, c)
				Decompress(nil, c, bomb, limit) // warm pools and shared codecs
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				it := Iterator{MaxDecompressed: limit}
				err := it.Reset(batch)
				runtime.ReadMemStats(&after)
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("err = %v, want ErrTooLarge", err)
				}
				n := after.TotalAlloc - before.TotalAlloc
				t.Logf("allocated %d KiB", n>>10)
				if n > 16<<20 {
					t.Errorf("allocated %d MiB for a %d MiB limit", n>>20, limit>>20)
				}
			})
		}
	}
}

func mustCompress(t testing.TB, c Compression, src []byte) []byte {
	t.Helper()
	out, err := Compress(nil, c, src)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecompressCorrupt(t *testing.T) {
	src := payload(100<<10, true)
	for _, c := range codecs[1:] {
		good := mustCompress(t, c, src)
		cases := map[string][]byte{
			"empty":     {},
			"garbage":   []byte("this is not compressed at all, not in any codec"),
			"truncated": good[:len(good)/2],
		}
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0xff
		cases["flipped"] = flipped
		for name, in := range cases {
			t.Run(c.String()+"/"+name, func(t *testing.T) {
				got, err := Decompress([]byte("x"), c, in, 0)
				if err == nil {
					// A flipped byte inside a literal can go unnoticed by
					// codecs without a checksum (the batch CRC catches it),
					// and an empty lz4 or zstd stream holds no frames.
					if name == "flipped" || (name == "empty" && (c == CompressionLZ4 || c == CompressionZstd)) {
						return
					}
					t.Fatalf("no error, %d bytes", len(got))
				}
				if !errors.Is(err, ErrDecompress) {
					t.Fatalf("err = %v, want ErrDecompress", err)
				}
				if string(got) != "x" {
					t.Fatalf("dst not restored: %q", got)
				}
			})
		}
	}
}

func TestXerialMalformed(t *testing.T) {
	framed := xerial.Encode(nil, payload(1000, true))
	for name, in := range map[string][]byte{
		"header cut":         framed[:12],
		"chunk length cut":   framed[:18],
		"chunk past the end": framed[:len(framed)-1],
		"trailing bytes":     append(bytes.Clone(framed), 0, 0),
		"bad chunk":          append(append(bytes.Clone(framed[:16]), 0, 0, 0, 2), 0xff, 0xff),
	} {
		if _, err := Decompress(nil, CompressionSnappy, in, 0); !errors.Is(err, ErrDecompress) {
			t.Errorf("%s: err = %v, want ErrDecompress", name, err)
		}
	}
}

func TestUnknownCodec(t *testing.T) {
	if _, err := Compress(nil, 5, []byte("x")); !errors.Is(err, ErrCompression) {
		t.Errorf("Compress: %v", err)
	}
	if _, err := Decompress(nil, -1, []byte("x"), 0); !errors.Is(err, ErrCompression) {
		t.Errorf("Decompress: %v", err)
	}
}

// The pooled and shared codec state must be safe under concurrent use.
func TestCodecsConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				for _, c := range codecs {
					src := payload(1000+g*100+i, (g+i)%2 == 0)
					comp, err := Compress(nil, c, src)
					if err == nil {
						var out []byte
						out, err = Decompress(nil, c, comp, 0)
						if err == nil && !bytes.Equal(out, src) {
							err = fmt.Errorf("%s: round trip differs", c)
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
