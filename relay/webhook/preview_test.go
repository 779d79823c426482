package webhook

import (
	"testing"

	"github.com/hookmail/hookmail/config"
)

// TestPreviewSource: render, route and the admin page's try form take a
// source of the config by name, or a format's own; a wrong one names the
// word of the flag or field it came from.
func TestPreviewSource(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhook.SourceList = []config.Source{{Name: "android", Path: "/sms", Format: config.FormatSMSGate, Secrets: []config.Secret{"k"}}}
	for _, tc := range []struct {
		name, format string
		want         config.Source
		err          string
	}{
		{"", "", config.Source{Name: SourceGateway, Format: config.FormatZender, Path: cfg.Webhook.Path}, ""},
		{"", config.FormatTwilio, config.Source{Name: config.FormatTwilio, Format: config.FormatTwilio, Path: cfg.Webhook.Path}, ""},
		{"android", "", cfg.Webhook.SourceList[0], ""},
		{"android", config.FormatSMSGate, cfg.Webhook.SourceList[0], ""},
		{"phone", "", config.Source{}, `source "phone": no such source in the config; there are gateway, android`},
		{"android", config.FormatTwilio, config.Source{}, "format twilio: source android's format is smsgate; give one of the two"},
		{"", "xml", config.Source{}, `format "xml": hookmail reads zender, smsgate, twilio, textbee, httpsms`},
	} {
		src, err := PreviewSource(cfg, tc.name, tc.format)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q %q: %v, want %q", tc.name, tc.format, err, tc.err)
			}
			continue
		}
		if err != nil || src.Name != tc.want.Name || src.Format != tc.want.Format || src.Path != tc.want.Path {
			t.Errorf("%q %q: %+v %v, want %+v", tc.name, tc.format, src, err, tc.want)
		}
	}
}
