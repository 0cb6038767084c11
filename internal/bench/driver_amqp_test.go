package bench

import (
	"strings"
	"testing"
)

// Bad driver options are refused before anything is dialled, naming the
// option.
func TestAMQPDriverOptions(t *testing.T) {
	for opts, want := range map[string]string{
		"queue-type=stream":          `option queue-type "stream"`,
		"max-length=0":               `option max-length "0"`,
		"max-length=ten":             `option max-length "ten"`,
		"overflow=block":             `option overflow "block" needs max-length`,
		"max-length=5,overflow=wait": `option overflow "wait"`,
		"max-lenght=5":               `unknown option "max-lenght"`,
	} {
		o := map[string]string{}
		for _, kv := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(kv, "=")
			o[k] = v
		}
		_, err := Open(t.Context(), "amqp", DriverConfig{URL: "amqp://127.0.0.1:1/", Options: o})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("options %s: error %v, want one with %s", opts, err, want)
		}
	}
}
