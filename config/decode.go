package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// decodeProblems turns mapstructure's errors into ones that name the key,
// quote the value and show how to write it, so a typo reads "unknown key
// smtp.hots" and a bad duration `smtp.timeout: "2x" is not a valid
// duration`. viper wraps mapstructure's joined errors, which may nest, so
// every layer is opened. settings are the values decoded, to quote from.
func decodeProblems(err error, settings map[string]any) error {
	var problems []error
	var walk func(key string, e error)
	walk = func(key string, e error) {
		switch e := e.(type) {
		case *mapstructure.DecodeError:
			walk(strings.TrimPrefix(e.Name(), "."), e.Unwrap())
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(key, inner)
			}
		case *mapstructure.ParseError:
			problems = append(problems, badValue(key, e.Expected.Type(), settings, e))
		case *mapstructure.UnconvertibleTypeError:
			problems = append(problems, badValue(key, e.Expected.Type(), settings, e))
		default:
			if inner := errors.Unwrap(e); inner != nil {
				walk(key, inner)
				return
			}
			if rest, ok := strings.CutPrefix(e.Error(), "has invalid keys: "); ok {
				for _, k := range strings.Split(rest, ", ") {
					problems = append(problems, &Problem{
						Key:     joinKey(key, k),
						Message: "unknown key",
						Fix:     "remove it or correct its spelling (config/hookmail.example.yaml lists every key)",
					})
				}
				return
			}
			problems = append(problems, badValue(key, fieldType(key), settings, e))
		}
	}
	walk("", err)
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Error() < problems[j].Error() })
	return errors.Join(problems...)
}

// badValue is the problem of a value at key that does not decode into t:
// the value quoted (a secret never), and an example.
func badValue(key string, t reflect.Type, settings map[string]any, cause error) *Problem {
	val, found := lookup(settings, key)
	shown := "" // "key: is not …" when the value is a secret's or not found
	switch val.(type) {
	case []any:
		shown = "a list "
	case map[string]any:
		shown = "a map "
	default:
		if found && t != reflect.TypeFor[Secret]() {
			shown = fmt.Sprintf("%q ", fmt.Sprint(val))
		}
	}
	p := &Problem{Key: key, Message: cause.Error(), Fix: "give a value of the type shown in config/hookmail.example.yaml"}
	if t == nil {
		return p
	}
	switch k := t.Kind(); {
	case t == reflect.TypeFor[time.Duration]():
		p.Message, p.Fix = shown+"is not a valid duration", `write it like "30s", "5m" or "1h"`
	case k >= reflect.Int && k <= reflect.Uint64:
		p.Message, p.Fix = shown+"is not a valid whole number", "write it in digits, like 10"
	case k == reflect.Float32 || k == reflect.Float64:
		p.Message, p.Fix = shown+"is not a valid number", "write it like 10 or 0.5"
	case k == reflect.Bool:
		p.Message, p.Fix = shown+"is not a valid boolean", "write true or false"
	case k == reflect.String:
		p.Message, p.Fix = shown+"is not a single value", `write one value, in quotes, like "…"`
		// The default routes are an example of a value, not of every route's.
		if def, ok := lookup(defaultSettings(), key); ok && fmt.Sprint(def) != "" && t != reflect.TypeFor[Secret]() && !strings.HasPrefix(key, "routes") {
			p.Fix = fmt.Sprintf("write one value, in quotes, like %q", fmt.Sprint(def))
		}
	case k == reflect.Slice:
		p.Message, p.Fix = shown+"is not a list", `write it in brackets, like ["a", "b"], or as "- " lines`
	case k == reflect.Struct || k == reflect.Map:
		p.Message, p.Fix = shown+"is not a map of keys", "write it as config/hookmail.example.yaml shows"
	}
	return p
}

// keyParts splits a key as mapstructure names it, routes[0].match[type],
// into routes, [0], match, [type].
var keyParts = regexp.MustCompile(`\[[^\]]*\]|[^.\[\]]+`)

// fieldType is the Go type of the Config field at key, nil when there is
// none.
func fieldType(key string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for _, part := range keyParts.FindAllString(key, -1) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case strings.HasPrefix(part, "["):
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Map {
				return nil
			}
			t = t.Elem()
		case t.Kind() == reflect.Struct:
			f, ok := fieldTagged(t, part)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldTagged(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if strings.Split(f.Tag.Get("mapstructure"), ",")[0] == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// lookup finds the value at key in viper's settings. mapstructure decodes
// a lone value where a list belongs as a list of one and names it [0], so
// a [0] that is not there names the value itself.
func lookup(settings map[string]any, key string) (any, bool) {
	var cur any = settings
	for _, part := range keyParts.FindAllString(key, -1) {
		name := strings.TrimSuffix(strings.TrimPrefix(part, "["), "]")
		var next any
		found := false
		switch c := cur.(type) {
		case map[string]any:
			next, found = c[name]
		case []any:
			if i, err := strconv.Atoi(name); err == nil && i >= 0 && i < len(c) {
				next, found = c[i], true
			}
		}
		switch {
		case found:
			cur = next
		case part != "[0]":
			return nil, false
		}
	}
	return cur, true
}

// defaultSettings are the built-in defaults as viper holds them.
func defaultSettings() map[string]any {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaultsYAML)); err != nil {
		return nil
	}
	return v.AllSettings()
}

func joinKey(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}
