package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// flatJSON is a JSON object flattened the way Event.Data keeps a format's
// fields: nested names joined with "." (array elements by index),
// numbers and true/false as written, null dropped. Values under the names
// blob picks are not fields but kept raw (quoted, escapes and all), so
// a large base64 attachment is neither copied into a string nor held to
// MaxFieldBytes: the caller decodes it straight from the body.
type flatJSON struct {
	fields map[string]string
	blobs  map[string][]byte // raw string literals, sub-slices of the body
}

// errBlobNotString is a blob (attachment data) that is neither a string
// nor null.
var errBlobNotString = errors.New("attachment data is not a base64 string")

// flattenJSON flattens the JSON object b within the decode limits: at most
// MaxFields values, MaxDepth levels, MaxNameBytes per name and
// MaxFieldBytes per value (blobs excepted). It allocates only for what it
// keeps as fields, however large the blobs.
func flattenJSON(b []byte, blob func(name string) bool) (*flatJSON, error) {
	// One scan up front (it allocates nothing) lets the walk below trust
	// the structure; it still never reads past b.
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: not JSON", ErrMalformed)
	}
	w := &flatWalker{b: b, blob: blob, out: &flatJSON{fields: map[string]string{}, blobs: map[string][]byte{}}}
	if w.ws(); w.peek() != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if err := w.value("", 0); err != nil {
		return nil, err
	}
	return w.out, nil
}

// flatWalker walks valid JSON by hand: encoding/json would copy every
// string it reads, the largest ones (attachments) included.
type flatWalker struct {
	b      []byte
	pos    int
	values int
	blob   func(string) bool
	out    *flatJSON
}

var errFlatMalformed = fmt.Errorf("%w: unexpected JSON", ErrMalformed)

func (w *flatWalker) peek() byte {
	if w.pos < len(w.b) {
		return w.b[w.pos]
	}
	return 0
}

func (w *flatWalker) ws() {
	for w.pos < len(w.b) {
		switch w.b[w.pos] {
		case ' ', '\t', '\r', '\n':
			w.pos++
		default:
			return
		}
	}
}

// value reads the value at w.pos, named name, depth containers deep.
func (w *flatWalker) value(name string, depth int) error {
	if len(name) > MaxNameBytes {
		return errNameTooLarge
	}
	if w.values++; w.values > MaxFields {
		return errTooManyFields
	}
	w.ws()
	switch c := w.peek(); c {
	case '{', '[':
		if depth >= MaxDepth {
			return errNestedTooDeep
		}
		if name != "" && w.blob != nil && w.blob(name) {
			return errBlobNotString
		}
		return w.container(name, depth, c)
	case '"':
		raw, err := w.str()
		if err != nil {
			return err
		}
		if w.blob != nil && w.blob(name) {
			w.out.blobs[name] = raw
			return nil
		}
		s, err := unquoteJSON(raw, MaxFieldBytes, errFieldTooLarge)
		if err != nil {
			return err
		}
		w.out.fields[name] = s
		return nil
	case 0:
		return errFlatMalformed
	}
	start := w.pos // a number, true, false or null
	for w.pos < len(w.b) && !endsLiteral(w.b[w.pos]) {
		w.pos++
	}
	lit := w.b[start:w.pos]
	switch {
	case len(lit) == 0:
		return errFlatMalformed
	case len(lit) > MaxFieldBytes:
		return errFieldTooLarge
	case string(lit) == "null":
		return nil
	case w.blob != nil && w.blob(name):
		return errBlobNotString
	}
	w.out.fields[name] = string(lit)
	return nil
}

// endsLiteral reports whether c ends a number or true/false/null.
func endsLiteral(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// container reads an object or array opened by open at w.pos.
func (w *flatWalker) container(name string, depth int, open byte) error {
	closing := byte('}')
	if open == '[' {
		closing = ']'
	}
	w.pos++
	if w.ws(); w.peek() == closing {
		w.pos++
		return nil
	}
	for i := 0; ; i++ {
		key := strconv.Itoa(i)
		if open == '{' {
			raw, err := w.str()
			if err != nil {
				return err
			}
			if key, err = unquoteJSON(raw, MaxNameBytes, errNameTooLarge); err != nil {
				return err
			}
			if w.ws(); w.peek() != ':' {
				return errFlatMalformed
			}
			w.pos++
		}
		if err := w.value(joinField(name, key), depth+1); err != nil {
			return err
		}
		w.ws()
		switch w.peek() {
		case closing:
			w.pos++
			return nil
		case ',':
			w.pos++
			w.ws()
		default:
			return errFlatMalformed
		}
	}
}

// str returns the string literal at w.pos, quotes included.
func (w *flatWalker) str() ([]byte, error) {
	if w.peek() != '"' {
		return nil, errFlatMalformed
	}
	for j := w.pos + 1; j < len(w.b); j++ {
		switch w.b[j] {
		case '\\':
			j++
		case '"':
			raw := w.b[w.pos : j+1]
			w.pos = j + 1
			return raw, nil
		}
	}
	return nil, errFlatMalformed
}

// unquoteJSON decodes the string literal raw, refusing with tooLarge one
// that decodes to more than limit bytes (checked before decoding as far
// as the literal's length tells: an escape of 6 bytes makes at least one).
func unquoteJSON(raw []byte, limit int, tooLarge error) (string, error) {
	inner := raw[1 : len(raw)-1]
	if len(inner) > 6*limit {
		return "", tooLarge
	}
	var s string
	if bytes.IndexByte(inner, '\\') < 0 {
		s = string(inner)
	} else if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(s) > limit {
		return "", tooLarge
	}
	return s, nil
}

// errBadBase64 is attachment data that does not decode.
var errBadBase64 = errors.New("attachment data is not valid base64")

// decodeBase64Literal decodes a JSON string literal of standard base64
// into a buffer of its decoded size, the only allocation when the literal
// has no escapes but its padding: Gson, escaping for HTML, writes "=" as
// \u003d, which is all the escaping base64 ever gets from it. Any other
// escape takes the long way (unquote, then decode).
func decodeBase64Literal(raw []byte) ([]byte, error) {
	inner, pad := trimBase64Padding(raw[1 : len(raw)-1])
	if bytes.IndexByte(inner, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errBadBase64
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errBadBase64
		}
		return b, nil
	}
	if pad > 0 && (len(inner)+pad)%4 != 0 {
		return nil, errBadBase64
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(inner)))
	n, err := base64.RawStdEncoding.Decode(out, inner)
	if err != nil {
		return nil, errBadBase64
	}
	return out[:n], nil
}

// trimBase64Padding cuts up to two padding characters, escaped or not,
// off the end of s.
func trimBase64Padding(s []byte) ([]byte, int) {
	pad := 0
	for pad < 2 {
		switch {
		case bytes.HasSuffix(s, []byte(`\u003d`)), bytes.HasSuffix(s, []byte(`\u003D`)):
			s = s[:len(s)-6]
		case bytes.HasSuffix(s, []byte("=")):
			s = s[:len(s)-1]
		default:
			return s, pad
		}
		pad++
	}
	return s, pad
}
