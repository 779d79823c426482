package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

const (
	twilioToken    = "b1946ac92492d2347c6235b4d2611184"
	twilioPublic   = "https://hooks.example.com/sms/twilio"
	twilioSeenPath = "http://10.0.0.7:8080/hooks/twilio" // what hookmail sees behind the proxy
	twilioSID      = "SM3f9a1c27e84b05d6a2c8e1f47b90d35e"
)

// twilioEnv is a receiver with one twilio source whose public_url is
// publicURL and whose auth tokens are tokens.
func twilioEnv(t testing.TB, publicURL string, tokens ...string) (*testEnv, http.Handler) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Dedup.Window = time.Hour
	var secrets []config.Secret
	for _, tok := range tokens {
		secrets = append(secrets, config.Secret(tok))
	}
	cfg.Webhook.SourceList = []config.Source{{Name: "twilio", Path: "/hooks/twilio", Format: config.FormatTwilio, Secrets: secrets, PublicURL: config.MaskedURL(publicURL)}}
	env := newTestEnv(t, cfg)
	keys := NewKeys(secrets)
	env.rc.Keys = func(string) Keys { return keys }
	src, ok := cfg.Webhook.Source("twilio")
	if !ok {
		t.Fatal("no twilio source")
	}
	return env, env.rc.Handler(src)
}

// postTwilio posts a form body to target (an absolute URL: the Host and
// path hookmail sees), with signature unless it is "".
func postTwilio(t testing.TB, h http.Handler, target, contentType, body, signature string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if signature != "" {
		req.Header.Set(twilioSignatureHeader, signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// twilioStored returns every event in the queue.
func twilioStored(t testing.TB, e *testEnv) []relay.Event {
	t.Helper()
	page, err := e.queue.List(t.Context(), relay.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []relay.Event
	for _, it := range page.Items {
		out = append(out, it.Event)
	}
	return out
}

// wantTwiML checks an answer is Twilio's empty TwiML with hookmail's status.
func wantTwiML(t testing.TB, rec *httptest.ResponseRecorder, status string) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/xml; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/xml", ct)
	}
	if rec.Body.String() != `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`+"\n" {
		t.Errorf("body = %q, want empty TwiML", rec.Body)
	}
	if got := rec.Header().Get("Hookmail-Status"); got != status {
		t.Errorf("Hookmail-Status = %q, want %q", got, status)
	}
}

func TestTwilioInboundSMS(t *testing.T) {
	env, h := twilioEnv(t, twilioPublic, twilioToken)
	body := string(readTestdata(t, "twilio-sms.form"))
	sig := twilioSign(t, twilioToken, twilioPublic, body)
	// Behind the proxy hookmail sees another scheme, host, port and path.
	rec := postTwilio(t, h, twilioSeenPath, formType, body, sig)
	wantTwiML(t, rec, "queued")
	first := rec.Header().Get("Hookmail-Event-Id")
	evs := twilioStored(t, env)
	if len(evs) != 1 {
		t.Fatalf("%d events stored, want 1", len(evs))
	}
	ev := evs[0]
	if ev.ID != first || ev.Type != relay.TypeSMS || ev.Format != relay.FormatTwilio || ev.Source != "twilio" {
		t.Errorf("event %s type %q format %q source %q; answered id %s", ev.ID, ev.Type, ev.Format, ev.Source, first)
	}
	want := relay.Content{From: "+15105550123", To: "+14155550100", Text: "Tom & Jerry's 😀\ncafé; see you at 5?", MessageID: twilioSID}
	if got := ev.Canonical(); got.From != want.From || got.To != want.To || got.Text != want.Text || got.MessageID != want.MessageID ||
		got.Status != "" || len(got.Attachments) != 0 || !got.Sent.IsZero() {
		t.Errorf("content = %+v\nwant      %+v", got, want)
	}
	fields, _ := url.ParseQuery(body)
	if len(ev.Data) != len(fields) {
		t.Errorf("data has %d fields, the body %d", len(ev.Data), len(fields))
	}
	for k := range fields {
		if ev.Data[k] != fields.Get(k) {
			t.Errorf("data[%s] = %q, want %q", k, ev.Data[k], fields.Get(k))
		}
	}

	// Twilio delivers it again: one event, the answer names the first.
	rec = postTwilio(t, h, twilioSeenPath, formType, body, sig)
	wantTwiML(t, rec, "duplicate")
	if got := rec.Header().Get("Hookmail-Event-Id"); got != first {
		t.Errorf("duplicate names %q, want the first, %q", got, first)
	}
	if n := len(twilioStored(t, env)); n != 1 {
		t.Errorf("%d events stored after the duplicate, want 1", n)
	}
}

func TestTwilioInboundMMS(t *testing.T) {
	env, h := twilioEnv(t, twilioPublic, twilioToken)
	body := string(readTestdata(t, "twilio-mms.form"))
	wantTwiML(t, postTwilio(t, h, twilioSeenPath, formType, body, twilioSign(t, twilioToken, twilioPublic, body)), "queued")
	evs := twilioStored(t, env)
	if len(evs) != 1 || evs[0].Type != relay.TypeMMS {
		t.Fatalf("events = %+v", evs)
	}
	c := evs[0].Canonical()
	const media = "https://api.twilio.com/2010-04-01/Accounts/AC7d2b19c4e05f3a86b1d4e927c3f08a51/Messages/MM8c41e7a2d3b96f05e1a7c42d98b3f60c/Media/"
	want := []relay.Attachment{
		{URL: media + "ME0b7e2d94c18a3f56e2d09b7c14a8e36f", ContentType: "image/jpeg"},
		{URL: media + "ME6a1f3c82e09d47b5a3e61d2c8f07b94e", ContentType: "video/mp4"},
	}
	if len(c.Attachments) != len(want) {
		t.Fatalf("attachments = %+v, want %+v", c.Attachments, want)
	}
	for i, a := range c.Attachments {
		if a.URL != want[i].URL || a.ContentType != want[i].ContentType || a.Data != nil || a.Size != 0 {
			t.Errorf("attachment %d = %+v, want %+v", i, a, want[i])
		}
	}
	if c.Text != "" || c.From != "+15105550123" || c.MessageID != "MM8c41e7a2d3b96f05e1a7c42d98b3f60c" {
		t.Errorf("content = %+v", c)
	}
	if evs[0].Data["MediaUrl1"] != want[1].URL {
		t.Errorf("data lacks MediaUrl1: %v", evs[0].Data)
	}
}

func TestTwilioStatusCallbacks(t *testing.T) {
	env, h := twilioEnv(t, twilioPublic, twilioToken)
	delivered := string(readTestdata(t, "twilio-delivered.form"))
	undelivered := string(readTestdata(t, "twilio-undelivered.form"))
	sent := strings.ReplaceAll(strings.Replace(delivered, "&RawDlrDoneDate=2612011219", "", 1), "=delivered", "=sent")
	queued := strings.ReplaceAll(sent, "=sent", "=queued")
	failed := strings.ReplaceAll(undelivered, "=undelivered", "=failed") + "&ErrorMessage=Unknown+destination+handset"
	send := func(body, want string) *httptest.ResponseRecorder {
		t.Helper()
		rec := postTwilio(t, h, twilioSeenPath, formType, body, twilioSign(t, twilioToken, twilioPublic, body))
		wantTwiML(t, rec, want)
		return rec
	}
	send(queued, "ignored") // a step with nothing to email
	if n := len(twilioStored(t, env)); n != 0 {
		t.Fatalf("an ignored status stored %d events", n)
	}
	ids := map[string]string{
		"sent":        send(sent, "queued").Header().Get("Hookmail-Event-Id"),
		"delivered":   send(delivered, "queued").Header().Get("Hookmail-Event-Id"),
		"undelivered": send(undelivered, "queued").Header().Get("Hookmail-Event-Id"),
		"failed":      send(failed, "queued").Header().Get("Hookmail-Event-Id"),
	}
	if rec := send(delivered, "duplicate"); rec.Header().Get("Hookmail-Event-Id") != ids["delivered"] {
		t.Errorf("duplicate names %q, want %q", rec.Header().Get("Hookmail-Event-Id"), ids["delivered"])
	}
	want := map[string]relay.Content{
		"sent":        {Status: "sent"},
		"delivered":   {Status: "delivered"},
		"undelivered": {Status: "failed", Text: "Twilio error 30003"},
		"failed":      {Status: "failed", Text: "Unknown destination handset (Twilio error 30003)"},
	}
	evs := twilioStored(t, env)
	if len(evs) != len(want) {
		t.Fatalf("%d events stored, want %d", len(evs), len(want))
	}
	for _, ev := range evs {
		name := ev.Data["MessageStatus"]
		w, c := want[name], ev.Canonical()
		if ev.ID != ids[name] || ev.Type != relay.TypeStatus || c.Status != w.Status || c.Text != w.Text ||
			c.To != "+15105550123" || c.From != "+14155550100" || c.MessageID != twilioSID {
			t.Errorf("%s: event %s type %q content %+v", name, ev.ID, ev.Type, c)
		}
	}
}

func TestTwilioRefusals(t *testing.T) {
	body := string(readTestdata(t, "twilio-sms.form"))
	sig := twilioSign(t, twilioToken, twilioPublic, body)
	tests := []struct {
		name, target, contentType, body, signature string
		want                                       int
		wantBody                                   string
	}{
		{"wrong auth token", twilioSeenPath, formType, body, twilioSign(t, "0123456789abcdef0123456789abcdef", twilioPublic, body), 401, "missing or wrong signature"},
		{"missing header", twilioSeenPath, formType, body, "", 401, "missing or wrong signature"},
		{"a field tampered", twilioSeenPath, formType, strings.Replace(body, "Body=Tom", "Body=Tim", 1), sig, 401, "missing or wrong signature"},
		{"a field added", twilioSeenPath, formType, body + "&NumMedia=1", sig, 401, "missing or wrong signature"},
		{"a field dropped", twilioSeenPath, formType, strings.Replace(body, "&ApiVersion=2010-04-01", "", 1), sig, 401, "missing or wrong signature"},
		{"signed for the URL hookmail sees", twilioSeenPath, formType, body, twilioSign(t, twilioToken, twilioSeenPath, body), 401, "missing or wrong signature"},
		{"a query the signature does not cover", twilioSeenPath + "?x=1", formType, body, sig, 401, "missing or wrong signature"},
		{"signature truncated", twilioSeenPath, formType, body, sig[:len(sig)-1], 401, "missing or wrong signature"},
		{"not a form", twilioSeenPath, "application/json", `{"MessageSid":"SM1"}`, sig, 415, "form-urlencoded"},
		{"malformed form", twilioSeenPath, formType, "Body=%zz", sig, 400, "does not decode"},
		{"too many fields", twilioSeenPath, formType, strings.Repeat("a=1&", MaxFields) + "a=1", sig, 413, "at most 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, h := twilioEnv(t, twilioPublic, twilioToken)
			rec := postTwilio(t, h, tt.target, tt.contentType, tt.body, tt.signature)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Fatalf("status = %d, body %s; want %d with %q", rec.Code, rec.Body, tt.want, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("error Content-Type = %q, want JSON", ct)
			}
			if strings.Contains(rec.Body.String(), twilioToken) || strings.Contains(rec.Body.String(), "Jerry") {
				t.Errorf("the answer echoes the token or the body: %s", rec.Body)
			}
			if n := len(twilioStored(t, env)); n != 0 {
				t.Errorf("refused, yet %d events stored", n)
			}
		})
	}
}

// FuzzTwilioDecode splits and maps arbitrary form bodies: it never panics,
// refuses what is over the limits, and keeps what it takes within them.
func FuzzTwilioDecode(f *testing.F) {
	for _, file := range []string{"twilio-sms.form", "twilio-mms.form", "twilio-delivered.form", "twilio-undelivered.form"} {
		f.Add(readTestdata(f, file))
	}
	f.Add([]byte("NumMedia=99999999999999999999&MediaUrl0=x&MessageSid=SM1"))
	f.Add([]byte("NumMedia=-3&MessageSid=SM1&=&&;a=%41+b&MessageStatus=read"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, err := parseTwilioForm(body)
		if err != nil {
			return
		}
		n := 0
		for k, vs := range fields {
			n += len(vs)
			if len(k) > MaxNameBytes {
				t.Fatalf("a name of %d bytes", len(k))
			}
			for _, v := range vs {
				if len(v) > MaxFieldBytes {
					t.Fatalf("a value of %d bytes", len(v))
				}
			}
		}
		if n > MaxFields {
			t.Fatalf("%d fields", n)
		}
		d := twilioEvent(fields)
		if d == nil || d.ev == nil || d.ev.Type == "" {
			t.Fatalf("no event: %+v", d)
		}
		if len(d.ev.Data) > n || len(d.ev.Content.Attachments) > n {
			t.Fatalf("%d data fields and %d attachments from %d fields", len(d.ev.Data), len(d.ev.Content.Attachments), n)
		}
		if d.ignored && d.ev.Type != relay.TypeStatus {
			t.Fatalf("ignored a %q", d.ev.Type)
		}
		_ = twilioPayload("https://h.example/p", fields)
	})
}
