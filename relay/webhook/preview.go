package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// decoder is a format that can decode a body without authenticating it,
// for `hookmail render` and `hookmail route`, which receive nothing.
type decoder interface {
	decode(q *request) (*decoded, *reqError)
}

// Preview decodes body as src's format decodes a webhook it has
// authenticated, without checking any signature: what `hookmail render
// --body` shows. header holds the request headers the format reads (such
// as httpSMS's X-Event-Type); contentType may be empty for the format's
// usual one.
func Preview(src config.Source, contentType string, header http.Header, body []byte, opts DecodeOptions) (*relay.Event, error) {
	f, ok := formatOf(&src).(decoder)
	if !ok {
		return nil, fmt.Errorf("format %q cannot be previewed", src.Format)
	}
	r := httptest.NewRequest(http.MethodPost, strings.TrimSuffix(src.Path, "/")+"/", strings.NewReader(string(body)))
	for k, v := range header {
		r.Header[k] = v
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	d, rerr := f.decode(&request{r: r, body: body, src: &src, opts: opts})
	switch {
	case rerr != nil:
		return nil, errors.New(rerr.reason)
	case d == nil || d.ev == nil:
		return nil, errors.New("body does not decode as a webhook")
	case d.ignored:
		return nil, fmt.Errorf("a %s body of type %q has nothing to email: hookmail answers it 200 and stores nothing", src.Format, d.ev.Type)
	}
	sanitize(d.ev)
	d.ev.Source, d.ev.Format = src.Name, src.Format
	return d.ev, nil
}
