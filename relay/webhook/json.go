package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// JSON bodies of the same shape as the platform's form:
// {"secret": …, "type": …, "data": {…}}, ids as numbers or strings.

// decodeJSON walks the body token by token instead of unmarshalling it, so
// the limits hold before anything is built for a value past them.
func decodeJSON(body io.Reader) (*Payload, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	w := &jsonWalker{dec: dec}
	p := &Payload{Data: map[string]string{}}
	if err := w.payload(p); err != nil {
		if isLimit(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return p, nil
}

// jsonWalker reads one JSON webhook, counting its values.
type jsonWalker struct {
	dec    *json.Decoder
	values int
}

// payload reads {"secret": …, "type": …, "data": {…}}; other keys are read
// (within the limits) and ignored, and nothing may follow the object.
func (w *jsonWalker) payload(p *Payload) error {
	if err := w.delim('{'); err != nil {
		return err
	}
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		// Case-insensitive, as encoding/json matches struct fields.
		switch {
		case strings.EqualFold(key, "secret"):
			if p.Secret, err = w.scalar(); err != nil {
				return fmt.Errorf("secret: %w", err)
			}
		case strings.EqualFold(key, "type"):
			if p.Type, err = w.scalar(); err != nil {
				return fmt.Errorf("type: %w", err)
			}
		case strings.EqualFold(key, "data"):
			err = w.data(p.Data)
		default:
			err = w.value("", 1, nil)
		}
		if err != nil {
			return err
		}
	}
	if err := w.delim('}'); err != nil {
		return err
	}
	_, err := w.dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err // an *http.MaxBytesError stays visible to the receiver
	}
	return errors.New("more than one JSON value")
}

func (w *jsonWalker) token() (json.Token, error) {
	w.values++
	if w.values > MaxFields {
		return nil, errTooManyFields
	}
	return w.dec.Token()
}

func (w *jsonWalker) delim(want json.Delim) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("want %v, not %v", want, tok)
	}
	return nil
}

// key reads an object key: always a string, the decoder checks that.
func (w *jsonWalker) key() (string, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return "", err
	}
	return tok.(string), nil
}

// scalar reads a string or number as a string; null is "".
func (w *jsonWalker) scalar() (string, error) {
	tok, err := w.token()
	if err != nil {
		return "", err
	}
	switch tok := tok.(type) {
	case nil:
		return "", nil
	case string:
		if len(tok) > MaxFieldBytes {
			return "", errFieldTooLarge
		}
		return tok, nil
	case json.Number:
		return tok.String(), nil
	}
	return "", errors.New("must be a string")
}

// data reads the data object (or null) into out.
func (w *jsonWalker) data(out map[string]string) error {
	tok, err := w.token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("data must be an object")
	}
	return w.members("", 1, out)
}

// members reads an object's members after its '{', each named
// prefix.key at the given depth.
func (w *jsonWalker) members(prefix string, depth int, out map[string]string) error {
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		if err := w.value(joinField(prefix, key), depth, out); err != nil {
			return err
		}
	}
	return w.delim('}')
}

// value reads one value named name, as the platform would put it on the
// wire: booleans as "1"/"0", null dropped, nested names joined with ".".
// With a nil out it only reads the value.
func (w *jsonWalker) value(name string, depth int, out map[string]string) error {
	if len(name) > MaxNameBytes {
		return errNameTooLarge
	}
	tok, err := w.token()
	if err != nil {
		return err
	}
	var s string
	switch tok := tok.(type) {
	case json.Delim:
		if depth >= MaxDepth {
			return errNestedTooDeep
		}
		if tok == '{' {
			return w.members(name, depth+1, out)
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(joinField(name, strconv.Itoa(i)), depth+1, out); err != nil {
				return err
			}
		}
		return w.delim(']')
	case nil:
		return nil
	case string:
		if len(tok) > MaxFieldBytes {
			return errFieldTooLarge
		}
		s = tok
	case json.Number:
		s = tok.String()
	case bool:
		s = map[bool]string{true: "1", false: "0"}[tok]
	}
	if out != nil {
		out[name] = s
	}
	return nil
}

func joinField(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}
