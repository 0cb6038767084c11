package server

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ConfigFlags are the server's command-line flags: one per option, plus
// --config, which names the YAML file to read. Create them with BindFlags.
type ConfigFlags struct {
	flags      *flag.FlagSet
	configFile *string
	values     map[string]*string // option key → raw flag value
}

// BindFlags registers the server's flags on fs. After fs.Parse, Load builds
// the configuration from them and the other sources.
func BindFlags(fs *flag.FlagSet) *ConfigFlags {
	defaults := DefaultConfig()
	f := &ConfigFlags{
		flags:      fs,
		configFile: fs.String("config", "", "read options from this YAML file"),
		values:     make(map[string]*string, len(options)),
	}
	for _, o := range options {
		f.values[o.key] = fs.String(o.key, o.get(&defaults), fmt.Sprintf("%s (env %s)", o.help, o.env))
	}
	return f
}

// Load builds the configuration from, in increasing precedence: the
// defaults, the YAML file named by --config, the WEIR_* environment
// variables found by lookupEnv (os.LookupEnv in the program), and the flags
// given on the command line. A variable or flag set to the empty string
// counts as set: an empty address turns that listener off. The result is
// validated; every error wraps ErrInvalidConfig and names the source of the
// offending value.
func (f *ConfigFlags) Load(lookupEnv func(string) (string, bool)) (Config, error) {
	cfg := DefaultConfig()
	source := make(map[string]string) // option key → where its value came from

	if path := *f.configFile; path != "" {
		keys, err := cfg.loadFile(path)
		if err != nil {
			return Config{}, err
		}
		for _, k := range keys {
			source[k] = path
		}
	}
	for _, o := range options {
		raw, ok := lookupEnv(o.env)
		if !ok {
			continue
		}
		source[o.key] = o.env
		if err := o.set(&cfg, raw); err != nil {
			return Config{}, withSource(err, source)
		}
	}
	var flagErr error
	f.flags.Visit(func(fl *flag.Flag) {
		raw, ok := f.values[fl.Name]
		if !ok || flagErr != nil {
			return
		}
		o, _ := optionByKey(fl.Name)
		source[o.key] = "--" + o.key
		flagErr = o.set(&cfg, *raw)
	})
	if flagErr != nil {
		return Config{}, withSource(flagErr, source)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, withSource(err, source)
	}
	return cfg, nil
}

// withSource records in err, when it is about one option, where that
// option's value came from.
func withSource(err error, source map[string]string) error {
	var ve *valueError
	if errors.As(err, &ve) {
		ve.source = source[ve.key]
	}
	return err
}

// PrintUsage writes the flags with their defaults and environment variables
// to w, in the order of the options.
func (f *ConfigFlags) PrintUsage(w io.Writer) {
	defaults := DefaultConfig()
	fmt.Fprintf(w, "  --config file\n\tread options from this YAML file (keys as the flag names: data, kafka-addr, ...;\n\tand connectors:, the change data capture connectors, which only the file sets)\n")
	for _, o := range options {
		fmt.Fprintf(w, "  --%s %s\n\t%s (default %q, env %s)\n", o.key, o.arg, o.help, o.get(&defaults), o.env)
	}
}

// loadFile sets the options the YAML file at path gives and returns their
// keys. A key with no value (null) counts as the empty string, as an empty
// environment variable does.
func (c *Config) loadFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: config file: %w", ErrInvalidConfig, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, describeYAMLError(path, err))
	}
	// The decoder leaves a field alone when its key has no value; list the
	// keys so that those can be cleared, and so that errors can name the file.
	var given map[string]any
	if err := yaml.Unmarshal(data, &given); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, describeYAMLError(path, err))
	}
	keys := make([]string, 0, len(given))
	for _, o := range options {
		v, ok := given[o.key]
		if !ok {
			continue
		}
		keys = append(keys, o.key)
		if v == nil {
			o.clear(c)
		}
	}
	return keys, nil
}

var unknownFieldMessage = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)

// describeYAMLError turns an error from the YAML decoder into one line that
// names the file and, for an unknown key, the key and the known ones.
func describeYAMLError(path string, err error) string {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return fmt.Sprintf("%s: %v", path, err)
	}
	problems := make([]string, len(typeErr.Errors))
	for i, msg := range typeErr.Errors {
		if m := unknownFieldMessage.FindStringSubmatch(msg); m != nil {
			known := optionKeys()
			if m[3] == "server.ConnectorConfig" {
				known = connectorKeys() // a key of a connectors entry
			}
			msg = fmt.Sprintf("line %s: unknown key %q (known keys: %s)", m[1], m[2], strings.Join(known, ", "))
		}
		problems[i] = msg
	}
	return fmt.Sprintf("%s: %s", path, strings.Join(problems, "; "))
}
