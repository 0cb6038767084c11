package server

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// option is one configuration option, derived from the tags of a Config
// field: its YAML key (also its flag name), its environment variable, the
// name of its value in the help text, the help text itself, and the field.
type option struct {
	key   string
	env   string
	arg   string
	help  string
	field int // index in Config
}

// options is the table every configuration source is driven by, in the
// order of the Config fields.
var options = configOptions()

func configOptions() []option {
	var opts []option
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("yaml")
		if key == "" || key == "-" || f.Tag.Get("file") == "only" {
			continue // not an option, or a list only the file can give
		}
		if f.Type != durationType && f.Type != byteSizeType && f.Type.Kind() != reflect.String && f.Type.Kind() != reflect.Int {
			panic(fmt.Sprintf("server: Config.%s has type %s, which options cannot set", f.Name, f.Type))
		}
		opts = append(opts, option{
			key:   key,
			env:   "WEIR_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_")),
			arg:   f.Tag.Get("arg"),
			help:  f.Tag.Get("help"),
			field: i,
		})
	}
	return opts
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

func optionByKey(key string) (option, bool) {
	for _, o := range options {
		if o.key == key {
			return o, true
		}
	}
	return option{}, false
}

func optionKeys() []string {
	keys := make([]string, len(options))
	for i, o := range options {
		keys[i] = o.key
	}
	return keys
}

func (o option) value(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().Field(o.field)
}

// get formats the option's value in c the way set parses it.
func (o option) get(c *Config) string {
	v := o.value(c)
	switch v.Type() {
	case durationType:
		return time.Duration(v.Int()).String()
	case byteSizeType:
		return ByteSize(v.Int()).String()
	}
	if v.Kind() == reflect.Int {
		return strconv.FormatInt(v.Int(), 10)
	}
	return v.String()
}

// set parses raw, a value from the environment or a flag, into c. Its error
// names the option and the value; the caller adds the source.
func (o option) set(c *Config, raw string) error {
	v := o.value(c)
	switch v.Type() {
	case durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return invalidValue(o.key, raw, "not a duration; write it like 50ms, 2s or 1m")
		}
		v.SetInt(int64(d))
	case byteSizeType:
		n, err := ParseByteSize(raw)
		if err != nil {
			return invalidValue(o.key, raw, err.Error())
		}
		v.SetInt(int64(n))
	default:
		if v.Kind() == reflect.Int {
			n, err := strconv.Atoi(strings.TrimSpace(raw))
			if err != nil {
				return invalidValue(o.key, raw, "not a whole number")
			}
			v.SetInt(int64(n))
			return nil
		}
		v.SetString(raw)
	}
	return nil
}

// clear sets the option to its zero value, which for an address turns the
// listener off.
func (o option) clear(c *Config) {
	o.value(c).SetZero()
}
