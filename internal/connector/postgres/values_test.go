package postgres

import (
	"encoding/json"
	"testing"
)

func TestAppendValue(t *testing.T) {
	tests := []struct {
		oid        uint32
		text       string
		jsonObject bool
		want       string
	}{
		{oidBool, "t", false, `true`},
		{oidBool, "f", false, `false`},
		{oidInt2, "-32768", false, `-32768`},
		{oidInt8, "9223372036854775807", false, `9223372036854775807`},
		{oidOID, "4294967295", false, `4294967295`},
		{oidFloat8, "1.5e+300", false, `1.5e+300`},
		{oidFloat4, "0.1", false, `0.1`},
		{oidFloat8, "NaN", false, `"NaN"`},
		{oidFloat8, "-Infinity", false, `"-Infinity"`},
		{oidNumeric, "12345678901234567890.000001", false, `"12345678901234567890.000001"`},
		{oidJSONB, `{"a": 1}`, false, `"{\"a\": 1}"`},
		{oidJSONB, `{"a": 1}`, true, `{"a": 1}`},
		{oidBytea, `\x00ff`, false, `"AP8="`},
		{oidTimestampTZ, "2026-11-22 10:00:00.123456+00", false, `"2026-11-22T10:00:00.123456Z"`},
		{oidTimestamp, "2026-11-22 10:00:00", false, `"2026-11-22T10:00:00"`},
		{oidTimestampTZ, "infinity", false, `"infinity"`},
		{oidTimestamp, "0044-03-15 12:00:00 BC", false, `"0044-03-15 12:00:00 BC"`},
		{oidDate, "2026-11-22", false, `"2026-11-22"`},
		{1007, "{1,2,NULL}", false, `"{1,2,NULL}"`}, // int4[]
		{25, "tab\there \"quoted\" \\ \x01 é \xff", false, `"tab\there \"quoted\" \\ \u0001 é \ufffd"`},
	}
	for _, tt := range tests {
		got, err := appendValue(nil, tt.oid, []byte(tt.text), tt.jsonObject)
		if err != nil || string(got) != tt.want {
			t.Errorf("appendValue(%d, %q) = %s, %v; want %s", tt.oid, tt.text, got, err, tt.want)
			continue
		}
		if !json.Valid(got) {
			t.Errorf("appendValue(%d, %q) = %s: not JSON", tt.oid, tt.text, got)
		}
	}
	for _, bad := range []struct {
		oid  uint32
		text string
	}{{oidBool, "yes"}, {oidInt4, "1.5"}, {oidFloat8, "abc"}, {oidBytea, "00ff"}, {oidBytea, `\xzz`}} {
		if got, err := appendValue(nil, bad.oid, []byte(bad.text), false); err == nil {
			t.Errorf("appendValue(%d, %q) = %s, want an error", bad.oid, bad.text, got)
		}
	}
}

func TestStreamNameAndTables(t *testing.T) {
	if got := streamName("shop", "public", "Order Lines"); got != "shop.public.Order_Lines" {
		t.Errorf("streamName = %q", got)
	}
	for in, want := range map[string]tableName{"orders": {"public", "orders"}, "sales.orders": {"sales", "orders"}} {
		if got, err := parseTableName(in); err != nil || got != want {
			t.Errorf("parseTableName(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", ".x", "x.", "a.b.c"} {
		if _, err := parseTableName(bad); err == nil {
			t.Errorf("parseTableName(%q) accepted", bad)
		}
	}
	cfg := Config{Name: "shop-1", DSN: "host=db", Tables: []string{"orders"}}.withDefaults()
	if cfg.Slot != "weir_shop_1" || cfg.Publication != "weir_shop_1" || cfg.Prefix != "shop-1" {
		t.Errorf("defaults = %+v", cfg)
	}
	for _, bad := range []Config{
		{Name: "x", DSN: "host=db"},
		{Name: "x", Tables: []string{"t"}},
		{Name: "x", DSN: "host=db", Tables: []string{"t"}, Slot: "Bad-Slot"},
		{Name: "x", DSN: "host=db", Tables: []string{"t"}, Snapshot: "sometimes"},
		{Name: "x", DSN: "host=db", Tables: []string{"t"}, Prefix: "a b"},
		{Name: "", DSN: "host=db", Tables: []string{"t"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", bad)
		}
	}
}
