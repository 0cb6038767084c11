package server

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParsePerListener(t *testing.T) {
	names := []string{"kafka", "http"}
	valid := func(v string) error {
		if v == "bad" {
			return errors.New("bad value")
		}
		return nil
	}
	for _, tt := range []struct {
		raw         string
		kafka, http string
		err         string
	}{
		{raw: "", kafka: "d", http: "d"},
		{raw: "x", kafka: "x", http: "x"},
		{raw: "http=y", kafka: "d", http: "y"},
		{raw: "x, http = y", kafka: "x", http: "y"},
		{raw: "kafka=y,x", kafka: "y", http: "x"},
		{raw: "x,y", err: "two values without a listener name"},
		{raw: "x,,y", err: "empty item"},
		{raw: "smtp=x", err: `unknown listener "smtp" (listeners: kafka, http)`},
		{raw: "http=x,http=y", err: `listener "http" given twice`},
		{raw: "http=bad", err: `"http=bad": bad value`},
		{raw: "bad", err: `"bad": bad value`},
	} {
		p, err := parsePerListener(tt.raw, "d", names, valid)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.raw, err, tt.err)
			}
			continue
		}
		if err != nil || p.get("kafka") != tt.kafka || p.get("http") != tt.http {
			t.Errorf("%q: kafka %q http %q err %v, want %q %q", tt.raw, p.get("kafka"), p.get("http"), err, tt.kafka, tt.http)
		}
	}
}

// FuzzPerListener: any value of a per-listener option either fails to
// parse or gives every listener a value that passed the check.
func FuzzPerListener(f *testing.F) {
	for _, seed := range []string{"", "require", "require,https=none", "10000,http=500", "x,,y", "a=b=c", "=", ","} {
		f.Add(seed)
	}
	names := tlsListenerNames
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := parsePerListener(raw, "none", names, validClientAuth)
		if err != nil {
			return
		}
		for _, n := range append(slices.Clone(names), "other") {
			if err := validClientAuth(p.get(n)); err != nil {
				t.Fatalf("%q: listener %s got %q", raw, n, p.get(n))
			}
		}
	})
}
