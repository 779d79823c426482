package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
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

// PreviewSource is the source an event to preview comes from: the one of
// cfg named name, or, without a name, one of format (default zender) named
// after it. Its errors begin with the word they are about, "source" or
// "format", so a command can name its flag of that name.
func PreviewSource(cfg *config.Config, name, format string) (config.Source, error) {
	if name != "" {
		src, ok := cfg.Webhook.Source(name)
		if !ok {
			var names []string
			for _, s := range cfg.Webhook.Sources() {
				names = append(names, s.Name)
			}
			return src, fmt.Errorf("source %q: no such source in the config; there are %s", name, strings.Join(names, ", "))
		}
		if format != "" && format != src.Format {
			return src, fmt.Errorf("format %s: source %s's format is %s; give one of the two", format, src.Name, src.Format)
		}
		return src, nil
	}
	if format == "" {
		format = config.FormatZender
	}
	if !slices.Contains(config.SourceFormats, format) {
		return config.Source{}, fmt.Errorf("format %q: hookmail reads %s", format, strings.Join(config.SourceFormats, ", "))
	}
	name = format
	if format == config.FormatZender {
		name = SourceGateway
	}
	return config.Source{Name: name, Format: format, Path: cfg.Webhook.Path}, nil
}
