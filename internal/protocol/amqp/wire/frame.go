package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// ProtocolHeader is what an AMQP 0-9-1 client sends first, and what a
// server answers a wrong header with before closing.
var ProtocolHeader = []byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}

// FrameOverhead is the frame header (type, channel, size) and frame-end.
const FrameOverhead = 8

// Frame is one frame. Payload is valid until the next ReadFrame.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// FrameReader reads frames, refusing any larger than the frame-max before
// reading its payload.
type FrameReader struct {
	r   *bufio.Reader
	max uint32 // the largest frame, overhead included
	buf []byte
	hdr [7]byte
}

// NewFrameReader reads frames from r of at most maxFrame bytes.
func NewFrameReader(r *bufio.Reader, maxFrame uint32) *FrameReader {
	return &FrameReader{r: r, max: maxFrame}
}

// SetMaxFrame changes the largest frame accepted (after tuning).
func (fr *FrameReader) SetMaxFrame(n uint32) { fr.max = n }

// ReadFrame reads the next frame.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Type: fr.hdr[0], Channel: binary.BigEndian.Uint16(fr.hdr[1:3])}
	size := binary.BigEndian.Uint32(fr.hdr[3:7])
	if fr.max > 0 && uint64(size)+FrameOverhead > uint64(fr.max) {
		return f, fmt.Errorf("%w: %d bytes, frame-max %d", ErrFrameTooLarge, uint64(size)+FrameOverhead, fr.max)
	}
	if cap(fr.buf) < int(size)+1 {
		fr.buf = make([]byte, int(size)+1)
	}
	buf := fr.buf[:int(size)+1]
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return f, err
	}
	if buf[size] != FrameEnd {
		return f, fmt.Errorf("%w: got 0x%02x", ErrFrameEnd, buf[size])
	}
	f.Payload = buf[:size]
	return f, nil
}

// beginFrame appends a frame header with a size to be patched by
// endFrame; it returns where the payload starts.
func beginFrame(dst []byte, typ uint8, channel uint16) ([]byte, int) {
	dst = append(dst, typ, byte(channel>>8), byte(channel), 0, 0, 0, 0)
	return dst, len(dst)
}

func endFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start-4:], uint32(len(dst)-start))
	return append(dst, FrameEnd)
}

// AppendMethod appends a method frame.
func AppendMethod(dst []byte, channel uint16, m Method) ([]byte, error) {
	dst, start := beginFrame(dst, FrameMethod, channel)
	e := Encoder{Buf: dst}
	e.Short(m.ClassIndex())
	e.Short(m.MethodIndex())
	m.Encode(&e)
	return endFrame(e.Buf, start), e.err
}

// AppendHeartbeat appends a heartbeat frame.
func AppendHeartbeat(dst []byte) []byte {
	return append(dst, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// ContentHeader is a content header frame's payload.
type ContentHeader struct {
	ClassID    uint16
	BodySize   uint64
	Properties Properties
}

// DecodeContentHeader decodes a content header frame's payload into h.
func DecodeContentHeader(payload []byte, h *ContentHeader) error {
	d := Decoder{buf: payload}
	h.ClassID = d.Short()
	d.Short() // weight, always 0
	h.BodySize = d.LongLong()
	h.Properties = Properties{}
	// Flag words: bit 0 of each says another follows. The basic class
	// has 14 properties, all in the first word; later words carry none.
	flags := d.Short()
	for more := flags&1 != 0; more && d.err == nil; {
		more = d.Short()&1 != 0
	}
	h.Properties.Flags = flags &^ 1
	h.Properties.decodeFields(&d)
	if d.err != nil {
		return fmt.Errorf("content header: %w", d.err)
	}
	if d.Remaining() != 0 {
		return fmt.Errorf("%w: content header: %d trailing bytes", ErrMalformed, d.Remaining())
	}
	return nil
}

// AppendContent appends a content header frame and the body frames for
// body, each body frame at most frameMax bytes (overhead included; 0: no
// limit).
func AppendContent(dst []byte, channel uint16, classID uint16, props *Properties, body []byte, frameMax uint32) ([]byte, error) {
	dst, start := beginFrame(dst, FrameHeader, channel)
	e := Encoder{Buf: dst}
	e.Short(classID)
	e.Short(0)
	e.LongLong(uint64(len(body)))
	flags := props.presentFlags() &^ 1
	e.Short(flags)
	props.encodeFields(&e, flags)
	dst = endFrame(e.Buf, start)
	chunk := len(body)
	if frameMax > FrameOverhead {
		chunk = int(frameMax - FrameOverhead)
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		dst, start = beginFrame(dst, FrameBody, channel)
		dst = append(dst, body[:n]...)
		dst = endFrame(dst, start)
		body = body[n:]
	}
	return dst, e.err
}
