package server

import (
	"errors"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes that configuration sources write as a plain
// number of bytes (1048576) or with a unit: B, KiB, MiB, GiB (powers of
// 1024) or KB, MB, GB (powers of 1000), as in 512KiB or 1MiB.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	size   int64
}{
	// Longest suffixes first, so that "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

var errByteSize = errors.New("not a size; write it like 1048576, 512KiB or 1MiB")

// ParseByteSize parses a size as ByteSize documents it.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if number, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(number), u.size
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errByteSize
	}
	return ByteSize(n * mult), nil
}

// String formats the size the shortest exact way: 1MiB, 1536KiB, 1000.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalText parses a size; the YAML decoder uses it.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText formats a size as String does.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }
