package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// DefaultMaxDecompressed is the default bound on the size a batch's records
// section may decompress to.
const DefaultMaxDecompressed = 64 << 20

// Errors from Decompress.
var (
	ErrTooLarge   = errors.New("record: records decompress past the size limit")
	ErrDecompress = errors.New("record: corrupt compressed records")
)

// Compress appends src compressed with codec c to dst, in the form Kafka
// clients write into a batch's records section:
//
//   - gzip: one gzip member;
//   - snappy: one raw snappy block (not xerial-framed; the Java client reads
//     both);
//   - lz4: one LZ4 frame with 64 KiB independent blocks and no checksums, as
//     the Java client writes it (the batch CRC covers the bytes);
//   - zstd: one zstd frame.
func Compress(dst []byte, c Compression, src []byte) ([]byte, error) {
	switch c {
	case CompressionNone:
		return append(dst, src...), nil
	case CompressionGzip:
		return compressGzip(dst, src)
	case CompressionSnappy:
		n := snappy.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("%w: %d bytes is too much for one snappy block", ErrBadLength, len(src))
		}
		dst = slices.Grow(dst, n)
		out := snappy.Encode(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(out)], nil
	case CompressionLZ4:
		return compressLZ4(dst, src)
	case CompressionZstd:
		enc, err := zstdEncoder()
		if err != nil {
			return dst, err
		}
		return enc.EncodeAll(src, dst), nil
	}
	return dst, ErrCompression
}

// Decompress appends the decompression of src, compressed with codec c, to
// dst. When the output would exceed limit bytes it fails with an error
// wrapping ErrTooLarge, having allocated no more than a small multiple of
// limit whatever the input claims; limit <= 0 means DefaultMaxDecompressed. Corrupt input yields an error wrapping
// ErrDecompress. On error dst is returned with its original length.
//
// Snappy input may be a raw block or xerial-framed (as the Java client
// writes it); gzip input may hold several members.
func Decompress(dst []byte, c Compression, src []byte, limit int) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxDecompressed
	}
	start := len(dst)
	var err error
	switch c {
	case CompressionNone:
		if len(src) > limit {
			return dst, tooLarge(limit)
		}
		return append(dst, src...), nil
	case CompressionGzip:
		dst, err = decompressGzip(dst, src, limit)
	case CompressionSnappy:
		dst, err = decompressSnappy(dst, src, limit)
	case CompressionLZ4:
		dst, err = decompressLZ4(dst, src, limit)
	case CompressionZstd:
		dst, err = decompressZstd(dst, src, limit)
	default:
		return dst, ErrCompression
	}
	if err != nil {
		if !errors.Is(err, ErrTooLarge) {
			err = fmt.Errorf("%w: %s: %w", ErrDecompress, c, err)
		}
		return dst[:start], err
	}
	return dst, nil
}

func tooLarge(limit int) error {
	return fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
}

// readLimited appends everything r yields to dst, failing once more than
// limit bytes have come. It grows dst geometrically but never past
// limit+1 bytes of output, the most needed to detect the excess.
func readLimited(dst []byte, r io.Reader, limit int) ([]byte, error) {
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			room := limit + 1 - (len(dst) - start)
			dst = slices.Grow(dst, min(max(len(dst)-start, 4<<10), room))
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), start+limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst, tooLarge(limit)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// sliceWriter is an io.Writer appending to a slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Gzip writers and readers are pooled: each holds sizeable state.

// streamEncoder is a compressing writer that can be reused (gzip and lz4).
type streamEncoder interface {
	io.WriteCloser
	Reset(w io.Writer)
}

// pooledEncoder is a reusable encoder writing into a growing slice.
type pooledEncoder struct {
	w   streamEncoder
	out sliceWriter
}

// compressPooled compresses src onto dst with an encoder from pool.
func compressPooled(pool *sync.Pool, dst, src []byte) ([]byte, error) {
	e := pool.Get().(*pooledEncoder)
	e.out.b = dst
	e.w.Reset(&e.out)
	_, err := e.w.Write(src)
	if err == nil {
		err = e.w.Close()
	}
	out := e.out.b
	e.out.b = nil
	pool.Put(e)
	if err != nil {
		return dst, err
	}
	return out, nil
}

var gzipEncoders = sync.Pool{New: func() any {
	e := new(pooledEncoder)
	e.w = gzip.NewWriter(&e.out)
	return e
}}

func compressGzip(dst, src []byte) ([]byte, error) { return compressPooled(&gzipEncoders, dst, src) }

type gzipDecoder struct {
	r   gzip.Reader
	src bytes.Reader
}

var gzipDecoders = sync.Pool{New: func() any { return new(gzipDecoder) }}

func decompressGzip(dst, src []byte, limit int) ([]byte, error) {
	d := gzipDecoders.Get().(*gzipDecoder)
	defer func() {
		d.src.Reset(nil)
		gzipDecoders.Put(d)
	}()
	d.src.Reset(src)
	if err := d.r.Reset(&d.src); err != nil {
		return dst, err
	}
	return readLimited(dst, &d.r, limit)
}

// LZ4 writers and readers are pooled too.

var lz4Encoders = sync.Pool{New: func() any {
	w := lz4.NewWriter(nil)
	// Cannot fail: valid options on a new writer. They survive Reset.
	_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false))
	return &pooledEncoder{w: w}
}}

func compressLZ4(dst, src []byte) ([]byte, error) { return compressPooled(&lz4Encoders, dst, src) }

type lz4Decoder struct {
	r   *lz4.Reader
	src bytes.Reader
}

var lz4Decoders = sync.Pool{New: func() any {
	d := new(lz4Decoder)
	d.r = lz4.NewReader(&d.src)
	return d
}}

func decompressLZ4(dst, src []byte, limit int) ([]byte, error) {
	d := lz4Decoders.Get().(*lz4Decoder)
	defer func() {
		d.r.Reset(nil)
		d.src.Reset(nil)
		lz4Decoders.Put(d)
	}()
	d.src.Reset(src)
	d.r.Reset(&d.src)
	return readLimited(dst, d.r, limit)
}

// Snappy. Kafka's Java client frames its snappy output the way xerial's
// snappy-java SnappyOutputStream does:
//
//	magic    8 bytes  0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
//	version  4 bytes  big-endian, 1
//	compat   4 bytes  big-endian, 1 (oldest version that can read this)
//	chunks   each a 4-byte big-endian length and a raw snappy block
//
// Other clients write one raw snappy block. A raw block cannot begin with
// the magic: it would declare 10,626 bytes and open with a copy, which
// has nothing yet to copy from.

var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16 // magic, version, compat

func decompressSnappy(dst, src []byte, limit int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return decodeSnappyBlock(dst, src, limit, limit)
	}
	if len(src) < xerialHeaderSize {
		return dst, errors.New("truncated xerial snappy header")
	}
	start := len(dst)
	for p := xerialHeaderSize; p < len(src); {
		if len(src)-p < 4 {
			return dst, errors.New("truncated xerial snappy chunk length")
		}
		n := binary.BigEndian.Uint32(src[p:])
		p += 4
		if uint64(n) > uint64(len(src)-p) {
			return dst, fmt.Errorf("xerial snappy chunk of %d bytes with %d left", n, len(src)-p)
		}
		var err error
		dst, err = decodeSnappyBlock(dst, src[p:p+int(n)], limit-(len(dst)-start), limit)
		if err != nil {
			return dst, err
		}
		p += int(n)
	}
	return dst, nil
}

// decodeSnappyBlock appends the decoding of one raw snappy block, which may
// produce at most room bytes before the overall limit is passed.
func decodeSnappyBlock(dst, block []byte, room, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return dst, err
	}
	if n > room {
		return dst, tooLarge(limit)
	}
	dst = slices.Grow(dst, n)
	out, err := snappy.Decode(dst[len(dst):len(dst)+n], block)
	if err != nil {
		return dst, err
	}
	if len(out) != n {
		return dst, errors.New("snappy block decoded to an unexpected length")
	}
	return dst[:len(dst)+n], nil
}

// Zstd. Encoders and decoders are expensive to create, so there is one of
// each, shared: EncodeAll and DecodeAll are safe for concurrent use.

var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithZeroFrames(true), // empty input still makes a valid frame
	)
})

var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0), // GOMAXPROCS concurrent DecodeAlls
		// DecodeAll never writes past cap(dst), which enforces the limit.
		zstd.WithDecodeAllCapLimit(true),
	)
})

// zstdBlockSlack is the most one zstd block can produce, with some slack.
const zstdBlockSlack = 128<<10 + 1<<10

// decompressZstd decodes into a buffer whose capacity is the decoder's
// bound. It starts from the frame's declared content size when there is
// one, or else from a guess (or the room dst already has), and retries
// with four times the room, up to limit, while the output does not fit.
// The retries cost at most a third more decoding work than the final pass.
//
// When the output outgrows the room mid-block the decoder reports a
// generic error rather than ErrDecoderSizeExceeded, so an error with the
// partial output within one block of the end of the room counts as "did
// not fit" too. Corrupt input therefore costs at most a few small retries:
// it only earns more room by producing output that fills it.
func decompressZstd(dst, src []byte, limit int) ([]byte, error) {
	dec, err := zstdDecoder()
	if err != nil {
		return dst, err
	}
	start := len(dst)
	room := max(cap(dst)-start, 4*len(src), 16<<10)
	var fh zstd.Header
	if fh.Decode(src) == nil && fh.HasFCS {
		if fh.FrameContentSize > uint64(limit) {
			return dst, tooLarge(limit)
		}
		room = max(cap(dst)-start, int(fh.FrameContentSize))
	}
	room = min(room, limit)
	for {
		dst = slices.Grow(dst, room)
		out, err := dec.DecodeAll(src, dst[:start:start+room])
		if err == nil {
			if len(out)-start > limit { // not expected with the cap limit
				return dst, tooLarge(limit)
			}
			return out, nil
		}
		if !errors.Is(err, zstd.ErrDecoderSizeExceeded) && start+room-len(out) >= zstdBlockSlack {
			return dst, err
		}
		if room >= limit {
			return dst, tooLarge(limit)
		}
		room = min(max(4*room, 16<<10), limit) // a declared size of 0 may lie
	}
}
