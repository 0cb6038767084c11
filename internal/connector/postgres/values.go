package postgres

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Type OIDs of the built-in types the connector maps to JSON specially
// (pg_type.dat). Every other type, arrays included, becomes its text form
// as a JSON string.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// sessionParams are set on every connection the connector opens, so that
// the text forms PostgreSQL sends (pgoutput's and the snapshot's, both
// produced by the types' output functions under the session's settings)
// are the ones the conversions below expect.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "iso_8601",
	"bytea_output":       "hex",
	"extra_float_digits": "3",
	"application_name":   "weir-cdc",
}

// appendValue appends the JSON form of a column value given in PostgreSQL's
// text format. jsonObject embeds json/jsonb values instead of quoting them.
func appendValue(dst []byte, oid uint32, text []byte, jsonObject bool) ([]byte, error) {
	switch oid {
	case oidBool:
		switch string(text) {
		case "t":
			return append(dst, "true"...), nil
		case "f":
			return append(dst, "false"...), nil
		}
		return nil, fmt.Errorf("bool value %q", text)
	case oidInt2, oidInt4, oidInt8, oidOID:
		if _, err := strconv.ParseInt(string(text), 10, 64); err != nil {
			if oid != oidOID {
				return nil, fmt.Errorf("integer value %q", text)
			}
			if _, err := strconv.ParseUint(string(text), 10, 32); err != nil {
				return nil, fmt.Errorf("oid value %q", text)
			}
		}
		return append(dst, text...), nil
	case oidFloat4, oidFloat8:
		bits := 64
		if oid == oidFloat4 {
			bits = 32
		}
		f, err := strconv.ParseFloat(string(text), bits)
		if err != nil {
			if s := string(text); s == "NaN" || s == "Infinity" || s == "-Infinity" {
				return appendString(dst, s), nil // not JSON numbers
			}
			return nil, fmt.Errorf("float value %q", text)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return appendString(dst, string(text)), nil
		}
		return strconv.AppendFloat(dst, f, 'g', -1, bits), nil
	case oidJSON, oidJSONB:
		if jsonObject && json.Valid(text) {
			return append(dst, text...), nil
		}
		return appendString(dst, string(text)), nil
	case oidBytea:
		raw, err := decodeBytea(text)
		if err != nil {
			return nil, err
		}
		return appendString(dst, base64.StdEncoding.EncodeToString(raw)), nil
	case oidTimestamp, oidTimestampTZ:
		return appendString(dst, isoTimestamp(string(text))), nil
	}
	// numeric (exact: a string, as Debezium's decimal.handling.mode=string),
	// text types, date, time, interval, uuid, arrays, enums, ...
	return appendString(dst, string(text)), nil
}

// isoTimestamp turns PostgreSQL's ISO output ("2026-11-22 10:00:00.5",
// with "+00" for timestamptz in UTC) into ISO-8601 ("2026-11-22T10:00:00.5",
// "…Z"). Values it does not recognise (infinity, BC dates) are left as they
// are.
func isoTimestamp(s string) string {
	if len(s) < 19 || s[10] != ' ' || strings.HasSuffix(s, " BC") {
		return s
	}
	s = s[:10] + "T" + s[11:]
	if rest, ok := strings.CutSuffix(s, "+00"); ok {
		return rest + "Z"
	}
	return s
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// decodeBytea decodes a bytea value in its hex text form (bytea_output=hex,
// a session setting of the connector).
func decodeBytea(text []byte) ([]byte, error) {
	h, ok := strings.CutPrefix(string(text), `\x`)
	if !ok {
		return nil, fmt.Errorf("bytea value not in hex format")
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("bytea value: %w", err)
	}
	return raw, nil
}
