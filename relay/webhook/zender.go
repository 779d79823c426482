package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/hookmail/hookmail/relay"
)

// Payload is a decoded webhook body before it becomes an Event: the secret
// still to be checked, the raw type and the data fields.
type Payload struct {
	Secret string
	Type   string
	Data   map[string]string
}

// Event is the event p describes (without id or receive time): what the
// receiver stores once the secret checks out, and what `hookmail render`
// previews.
func (p *Payload) Event() *relay.Event {
	return &relay.Event{Source: SourceGateway, Format: relay.FormatZender, Type: relay.NormalizeType(p.Type), Data: p.Data}
}

// zenderFormat is the platform's own: a form (or JSON, or multipart) whose
// secret field is the credential. The secret is in the body, so it is
// checked after decoding, which does not depend on it; a form's is checked
// as it arrives (readBody).
type zenderFormat struct{}

func (zenderFormat) precheck(*http.Request) *reqError { return nil }

func (zenderFormat) decode(q *request) (*decoded, *reqError) {
	p, err := DecodePayload(q.r.Header.Get("Content-Type"), bytes.NewReader(q.body), q.opts)
	if rerr := decodeError(err); rerr != nil {
		return nil, rerr
	}
	return &decoded{ev: p.Event()}, nil
}

func (zenderFormat) accept(q *request) (*decoded, *reqError) {
	p, err := DecodePayload(q.r.Header.Get("Content-Type"), bytes.NewReader(q.body), q.opts)
	if rerr := decodeError(err); rerr != nil {
		return nil, rerr
	}
	ev := p.Event()
	sender := q.keys.match(p.Secret)
	if sender < 0 {
		return &decoded{ev: ev}, errWrongSecret
	}
	if ev.Type == "" {
		return &decoded{ev: ev}, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "missing type"}
	}
	// The gateway's keys stay as they always were, so a restart keeps
	// deduplicating what the queue already holds; another zender source's
	// name their source too, so two platforms sharing a secret stay apart.
	kind := p.Type
	if q.src.Name != SourceGateway {
		kind = q.src.Name + "\x00" + p.Type
	}
	return &decoded{ev: ev, dedupKey: dedupKey(q.keys.hash(sender), kind, p.Data["id"])}, nil
}

func (zenderFormat) reply(w http.ResponseWriter, status, id string) { replyJSON(w, status, id) }

// dedupKey names the platform's event for deduplication: who sent it (the
// secret it came with, hashed, so two gateways with their own secrets
// never collide), the type as sent (the dashboard's test "notification"
// is not a real "notifications" event), and the sender's own id
// (data[id]). Without an id there is no key, and no deduplication. The key
// is a hash: no secret or field shows in the queue.
func dedupKey(sender [sha256.Size]byte, wireType, id string) string {
	if id == "" {
		return ""
	}
	h := sha256.New()
	h.Write(sender[:])
	h.Write([]byte("\x00" + wireType + "\x00" + id))
	return hex.EncodeToString(h.Sum(nil))
}

// decodeError is the answer to a body DecodePayload could not decode, nil
// for none.
func decodeError(err error) *reqError {
	switch {
	case err == nil:
		return nil
	case isLimit(err):
		// The text names the limit (MaxFields, MaxFieldBytes, ...) and
		// quotes nothing of the body.
		return &reqError{status: http.StatusRequestEntityTooLarge, result: ResultTooLarge, reason: err.Error()}
	case errors.Is(err, ErrUnsupportedMediaType):
		return &reqError{status: http.StatusUnsupportedMediaType, result: ResultUnsupported, reason: err.Error()}
	}
	return &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "body does not decode as a webhook"}
}

// DecodeOptions tune how a body is decoded.
type DecodeOptions struct {
	// UnescapeHTML undoes the gateway's htmlspecialchars once.
	UnescapeHTML bool
}

// Limits on the shape of a body. webhook.max_body_bytes bounds its size, but
// a body within it can still be shaped to cost far more than its size to
// decode, store and render, or to render into an email no mail server takes.
// A body over any of these is refused whole (413, naming the limit) before
// anything of it is queued. The platform's own bodies are far inside them.
const (
	// MaxFields bounds the values in one body: each key=value pair of a form
	// (a repeated key counts every time), each part of a multipart body, each
	// JSON value below the top-level object. The platform sends at most 9;
	// PHP's own cap on input variables (max_input_vars) is also 1000.
	MaxFields = 1000
	// MaxDepth bounds how deep field names nest: data[a] is 1 level,
	// data[a][b] 2; in JSON each object or array inside "data" is one more.
	MaxDepth = 8
	// MaxFieldBytes bounds one field's value as it arrives (after percent
	// decoding). The longest real texts (a WhatsApp message of some 65,000
	// characters, 4 bytes each at worst, HTML-escaped by the gateway) fit.
	// The email an event renders into stays within relay.MaxEmailBytes
	// whatever its fields: past it Render falls back to plain text.
	MaxFieldBytes = 512 << 10
	// MaxNameBytes bounds a data field's name (a.b.c once nested). Real
	// names are short words; the bound matters for JSON, where every value
	// inside an object repeats the object's name in its own, so a long name
	// above many values would cost its length once per value.
	MaxNameBytes = 256
	// MaxTypeBytes bounds the event type, which every log line about the
	// event carries; real types are one short word.
	MaxTypeBytes = 64
)

// Decode errors, each with its own HTTP status in the receiver. The three
// limit errors (413) carry a text that names the limit and never quotes the
// body, so the receiver shows it to the client as is.
var (
	ErrUnsupportedMediaType = errors.New("unsupported content type")
	ErrMalformed            = errors.New("malformed body")
	ErrTooManyFields        = errors.New("too many fields")
	ErrFieldTooLarge        = errors.New("field too large")
	ErrNestedTooDeep        = errors.New("field nested too deep")
)

var (
	errTooManyFields = fmt.Errorf("%w: a body may carry at most %d", ErrTooManyFields, MaxFields)
	errFieldTooLarge = fmt.Errorf("%w: a value may hold at most %d bytes", ErrFieldTooLarge, MaxFieldBytes)
	errNameTooLarge  = fmt.Errorf("%w: a field name may hold at most %d bytes", ErrFieldTooLarge, MaxNameBytes)
	errTypeTooLarge  = fmt.Errorf("%w: type may hold at most %d bytes", ErrFieldTooLarge, MaxTypeBytes)
	errNestedTooDeep = fmt.Errorf("%w: field names may nest at most %d levels", ErrNestedTooDeep, MaxDepth)
)

// isLimit reports whether err is a body over one of the limits above.
func isLimit(err error) bool {
	return errors.Is(err, ErrTooManyFields) || errors.Is(err, ErrFieldTooLarge) || errors.Is(err, ErrNestedTooDeep)
}

// DecodePayload reads a webhook body of the given Content-Type: PHP-style
// form (data[id]=…, brackets escaped or not), multipart form, or JSON of the
// same shape. Invalid UTF-8 is repaired, never rejected. A body over one of
// the limits above is ErrTooManyFields, ErrFieldTooLarge or ErrNestedTooDeep.
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
		p, err = decodeMultipart(body, params["boundary"])
	case "application/json", "text/json":
		p, err = decodeJSON(body)
	default:
		return nil, fmt.Errorf("%w: send application/x-www-form-urlencoded, multipart/form-data or application/json", ErrUnsupportedMediaType)
	}
	if err != nil {
		return nil, err
	}
	p.clean(opts.UnescapeHTML)
	if len(p.Type) > MaxTypeBytes { // after the repair, which may lengthen it
		return nil, errTypeTooLarge
	}
	return p, nil
}

func decodeForm(body io.Reader) (*Payload, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	// Counted the way url.ParseQuery counts, before it allocates a value
	// for each pair; its own cap (10,000, GODEBUG urlmaxqueryparams) would
	// only fail as a malformed body.
	if bytes.Count(b, []byte("&"))+1 > MaxFields {
		return nil, errTooManyFields
	}
	vals, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return payloadFromValues(vals)
}

// decodeMultipart reads the parts one by one rather than with ReadForm, so
// the limits hold as each part arrives: ReadForm would buffer up to its own
// caps (1,000 parts, 10 MB of values beyond maxMemory) and then report
// any of them as the same ErrMessageTooLarge.
func decodeMultipart(body io.Reader, boundary string) (*Payload, error) {
	if boundary == "" {
		return nil, fmt.Errorf("%w: multipart body without a boundary", ErrMalformed)
	}
	mr := multipart.NewReader(body, boundary)
	vals := url.Values{}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// %w twice: the receiver still sees an *http.MaxBytesError (413) inside.
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if n == MaxFields {
			return nil, errTooManyFields
		}
		name := part.FormName()
		if name == "" || part.FileName() != "" {
			continue // not a field; NextPart skips what is left of it
		}
		v, err := io.ReadAll(io.LimitReader(part, MaxFieldBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if len(v) > MaxFieldBytes {
			return nil, errFieldTooLarge
		}
		vals[name] = append(vals[name], string(v))
	}
	return payloadFromValues(vals)
}

// payloadFromValues maps PHP's http_build_query keys: data[id] is the data
// field id, data[a][b] is a.b. A repeated key keeps its last value, as PHP
// does, except secret: the first decides.
func payloadFromValues(vals url.Values) (*Payload, error) {
	p := &Payload{Data: map[string]string{}}
	for key, vs := range vals {
		for _, v := range vs {
			if len(v) > MaxFieldBytes {
				return nil, errFieldTooLarge
			}
		}
		if len(vs) == 0 {
			continue
		}
		val := vs[len(vs)-1]
		switch {
		case key == "secret":
			// The first, as readBody checks it before the rest arrives.
			p.Secret = vs[0]
		case key == "type":
			p.Type = val
		case strings.HasPrefix(key, "data[") && strings.HasSuffix(key, "]"):
			inner := key[len("data[") : len(key)-1]
			if strings.Count(inner, "][")+1 > MaxDepth {
				return nil, errNestedTooDeep
			}
			if len(inner) > MaxNameBytes {
				return nil, errNameTooLarge
			}
			if name := strings.ReplaceAll(inner, "][", "."); name != "" {
				p.Data[name] = val
			}
		}
	}
	return p, nil
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
