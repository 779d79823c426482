package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event is one webhook from a gateway, as hookmail keeps it: the sender's
// fields as strings, whatever the wire format was. Every queue backend stores
// it and every template renders it, so a new wire format only needs a decoder
// that fills it in.
type Event struct {
	// ID is hookmail's own id, time-ordered (UUIDv7); it is the 200 reply's
	// id and the base of the email's Message-ID.
	ID string `json:"id"`
	// Source names the sender the event came from ("gateway" for the
	// platform in WIRE-FORMATS.md).
	Source string `json:"source"`
	// Type is the normalised event type: sms, whatsapp, ussd, notification,
	// or whatever else the sender named.
	Type string `json:"type"`
	// Data holds the sender's data fields. Nested keys are joined with ".".
	Data map[string]string `json:"data"`
	// Received is when hookmail accepted the event.
	Received time.Time `json:"received"`
	// DedupKey identifies the sender's event across deliveries (source,
	// type and the sender's own id); empty when the sender gave no id. A
	// queue stores one event per key within its dedup window (JetStream's
	// Nats-Msg-Id plays the same part).
	DedupKey string `json:"dedup_key,omitempty"`
}

// Well-known event types.
const (
	TypeSMS          = "sms"
	TypeWhatsApp     = "whatsapp"
	TypeUSSD         = "ussd"
	TypeNotification = "notification"
)

// KnownTypes are the types with their own template; any other type renders
// with the generic one and counts as "other" in metrics.
var KnownTypes = []string{TypeSMS, TypeWhatsApp, TypeUSSD, TypeNotification}

// NormalizeType maps a wire type to hookmail's name for it.
func NormalizeType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	if t == "notifications" {
		return TypeNotification
	}
	return t
}

// Time is when the event happened: the sender's Unix timestamp when it gave
// a usable one, else when hookmail received it.
func (e *Event) Time() time.Time {
	if ts, err := strconv.ParseInt(strings.TrimSpace(e.Data["timestamp"]), 10, 64); err == nil && ts > 0 {
		return time.Unix(ts, 0)
	}
	return e.Received
}

// Payload is a decoded webhook body before it becomes an Event: the secret
// still to be checked, the raw type and the data fields.
type Payload struct {
	Secret string
	Type   string
	Data   map[string]string
}

// DecodeOptions tune how a body is decoded.
type DecodeOptions struct {
	// UnescapeHTML undoes the gateway's htmlspecialchars once.
	UnescapeHTML bool
	// MaxMultipartMemory bounds what a multipart body may hold in memory.
	MaxMultipartMemory int64
}

// Decode errors, each with its own HTTP status in the receiver.
var (
	ErrUnsupportedMediaType = errors.New("unsupported content type")
	ErrMalformed            = errors.New("malformed body")
)

// DecodePayload reads a webhook body of the given Content-Type: PHP-style
// form (data[id]=…, brackets escaped or not), multipart form, or JSON of the
// same shape. Invalid UTF-8 is repaired, never rejected.
func DecodePayload(contentType string, body io.Reader, opts DecodeOptions) (*Payload, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		return nil, fmt.Errorf("%w: content type %q does not parse", ErrUnsupportedMediaType, contentType)
	}
	var p *Payload
	switch mediaType {
	case "application/x-www-form-urlencoded":
		p, err = decodeForm(body)
	case "multipart/form-data":
		p, err = decodeMultipart(body, params["boundary"], opts.MaxMultipartMemory)
	case "application/json", "text/json":
		p, err = decodeJSON(body)
	default:
		return nil, fmt.Errorf("%w: send application/x-www-form-urlencoded, multipart/form-data or application/json", ErrUnsupportedMediaType)
	}
	if err != nil {
		return nil, err
	}
	p.clean(opts.UnescapeHTML)
	return p, nil
}

func decodeForm(body io.Reader) (*Payload, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	vals, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return payloadFromValues(vals), nil
}

func decodeMultipart(body io.Reader, boundary string, maxMemory int64) (*Payload, error) {
	if boundary == "" {
		return nil, fmt.Errorf("%w: multipart body without a boundary", ErrMalformed)
	}
	form, err := multipart.NewReader(body, boundary).ReadForm(maxMemory)
	if err != nil {
		// %w twice: the receiver still sees an *http.MaxBytesError or
		// multipart.ErrMessageTooLarge (413) inside.
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	defer form.RemoveAll()
	return payloadFromValues(url.Values(form.Value)), nil
}

// payloadFromValues maps PHP's http_build_query keys: data[id] is the data
// field id, data[a][b] is a.b. A repeated key keeps its last value, as PHP does.
func payloadFromValues(vals url.Values) *Payload {
	p := &Payload{Data: map[string]string{}}
	for key, vs := range vals {
		if len(vs) == 0 {
			continue
		}
		val := vs[len(vs)-1]
		switch {
		case key == "secret":
			p.Secret = val
		case key == "type":
			p.Type = val
		case strings.HasPrefix(key, "data[") && strings.HasSuffix(key, "]"):
			name := strings.ReplaceAll(key[len("data["):len(key)-1], "][", ".")
			if name != "" {
				p.Data[name] = val
			}
		}
	}
	return p
}

func decodeJSON(body io.Reader) (*Payload, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	var raw struct {
		Secret json.RawMessage `json:"secret"`
		Type   json.RawMessage `json:"type"`
		Data   map[string]any  `json:"data"`
	}
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: more than one JSON value", ErrMalformed)
	}
	p := &Payload{Data: map[string]string{}}
	var err error
	if p.Secret, err = jsonScalar(raw.Secret); err != nil {
		return nil, fmt.Errorf("%w: secret: %v", ErrMalformed, err)
	}
	if p.Type, err = jsonScalar(raw.Type); err != nil {
		return nil, fmt.Errorf("%w: type: %v", ErrMalformed, err)
	}
	flattenJSON("", raw.Data, p.Data)
	return p, nil
}

// jsonScalar reads a string or number as a string; absent or null is "".
func jsonScalar(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", errors.New("must be a string")
}

// flattenJSON writes values as the platform would put them on the wire:
// booleans as "1"/"0", null dropped, nested keys joined with ".".
func flattenJSON(prefix string, v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, inner := range v {
			flattenJSON(joinField(prefix, k), inner, out)
		}
	case []any:
		for i, inner := range v {
			flattenJSON(joinField(prefix, strconv.Itoa(i)), inner, out)
		}
	case string:
		out[prefix] = v
	case json.Number:
		out[prefix] = v.String()
	case bool:
		out[prefix] = map[bool]string{true: "1", false: "0"}[v]
	}
}

func joinField(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// clean repairs invalid UTF-8, drops NUL bytes, and undoes the gateway's
// HTML escaping once.
func (p *Payload) clean(unescape bool) {
	fix := func(s string) string {
		s = strings.ToValidUTF8(s, "\uFFFD")
		return strings.ReplaceAll(s, "\x00", "")
	}
	p.Type = fix(p.Type)
	// A fresh map: re-inserting repaired keys into the map being ranged over
	// could visit a value twice and unescape it twice.
	data := make(map[string]string, len(p.Data))
	for k, v := range p.Data {
		v = fix(v)
		if unescape {
			v = html.UnescapeString(v)
		}
		if k = fix(k); k != "" {
			data[k] = v
		}
	}
	p.Data = data
}

// FieldNames returns the data field names in a stable order: the order a
// sender of this type puts them on the wire, then the rest alphabetically.
func (e *Event) FieldNames() []string {
	order := map[string]int{}
	for i, name := range fieldOrder[e.Type] {
		order[name] = i + 1
	}
	names := make([]string, 0, len(e.Data))
	for k := range e.Data {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, oj := order[names[i]], order[names[j]]
		switch {
		case oi != 0 && oj != 0:
			return oi < oj
		case oi != 0 || oj != 0:
			return oi != 0
		}
		return names[i] < names[j]
	})
	return names
}

// fieldOrder is the field order of each known type in WIRE-FORMATS.md.
var fieldOrder = map[string][]string{
	TypeSMS:          {"id", "rid", "sim", "device", "phone", "message", "timestamp"},
	TypeWhatsApp:     {"id", "wid", "phone", "message", "attachment", "timestamp"},
	TypeUSSD:         {"id", "sim", "device", "code", "response", "timestamp"},
	TypeNotification: {"id", "device", "package", "title", "content", "timestamp"},
}
