package config

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/viper"
)

// MaxFileBytes bounds a config file. Real ones are a few KiB; the bound
// keeps a --config naming the wrong file (a log, a disk image) from filling
// memory.
const MaxFileBytes = 1 << 20

// Load builds the config from the defaults, the YAML file at path (none when
// path is empty), and the HOOKMAIL_* variables getenv returns. It reports
// unknown keys and values of the wrong type; Validate checks the rest.
// The file must be a regular file of at most MaxFileBytes.
//
// When the file parses but some values do not decode, Load returns the
// config along with the error: every key that decoded is filled in, each
// that did not is left at its zero value. That is for LoadValid, which
// validates the rest in the same pass; no other caller may use such a
// config.
func Load(path string, getenv func(string) string) (*Config, error) {
	var file []byte
	if path != "" {
		b, err := ReadRegularFile(path, MaxFileBytes)
		var notFile *NotAFileError
		switch {
		case errors.As(err, &notFile):
			return nil, fmt.Errorf("config file %s: %w; point --config (or HOOKMAIL_CONFIG) at the YAML file", path, err)
		case err != nil:
			return nil, fmt.Errorf("config file: %w", err)
		}
		file = b
	}
	cfg, err := load(file, getenv)
	if err != nil && path != "" {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, err
}

// LoadValid is Load and Validate in one pass, for serve, check and reload:
// the config when it is usable, else an error listing every problem at
// once, those of decoding (an unknown key, a value of the wrong type) and
// those Validate finds in what did decode. A key that did not decode is
// not reported again by Validate: its zero value would only add a spurious
// "must be positive".
func LoadValid(path string, getenv func(string) string) (*Config, error) {
	return LoadValidFor(Serve, path, getenv)
}

// LoadValidFor is LoadValid for what the config is used for.
func LoadValidFor(use Use, path string, getenv func(string) string) (*Config, error) {
	cfg, err := Load(path, getenv)
	if cfg == nil {
		return nil, err
	}
	var all []error
	if err != nil {
		all = append(all, err)
	}
	failed := Problems(err)
	for _, p := range Problems(cfg.ValidateFor(use)) {
		if !slices.ContainsFunc(failed, func(f *Problem) bool { return within(p.Key, f.Key) }) {
			all = append(all, p)
		}
	}
	if len(all) > 0 {
		return nil, errors.Join(all...)
	}
	return cfg, nil
}

// Problems lists the *Problem values in err, however wrapped and joined.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		switch e := e.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// within reports whether key is parent or lies below it:
// routes[1].name is within routes[1].
func within(key, parent string) bool {
	return key == parent || strings.HasPrefix(key, parent+".") || strings.HasPrefix(key, parent+"[")
}

func load(file []byte, getenv func(string) string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaultsYAML)); err != nil {
		return nil, err
	}
	known := v.AllKeys()
	if file != nil {
		if err := v.MergeConfig(bytes.NewReader(file)); err != nil {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
	}
	if getenv != nil {
		for _, key := range known {
			if key == "routes" || key == "webhook.sources" {
				continue // a list of objects has no sensible env form
			}
			if val, ok := lookupEnv(getenv, key); ok {
				v.Set(key, val)
			}
		}
	}
	cfg := &Config{}
	// mapstructure decodes all it can before it reports what it could not.
	decodeErr := v.UnmarshalExact(cfg)
	// "a, b" from the environment means two secrets, not " b".
	for i, sec := range cfg.Webhook.Secrets {
		cfg.Webhook.Secrets[i] = Secret(strings.TrimSpace(sec.Reveal()))
	}
	if getenv != nil {
		cfg.Webhook.applySourceEnv(getenv)
	}
	if decodeErr != nil {
		return cfg, decodeProblems(decodeErr, v.AllSettings())
	}
	return cfg, nil
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func lookupEnv(getenv func(string) string, key string) (string, bool) {
	val := getenv(EnvName(key))
	return val, val != ""
}
