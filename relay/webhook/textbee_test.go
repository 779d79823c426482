package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// pythonOut runs a python3 script with args and stdin and returns what it
// printed, trimmed: the tests' signatures come from Python's own hmac,
// hashlib and base64, not from the code under test.
func pythonOut(t testing.TB, stdin []byte, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command("python3", append([]string{"-c", script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// formatEnv is a receiver serving one source of the given format, with
// dedup on, its keys the given ones and its clock fixed at now.
func formatEnv(t *testing.T, src config.Source, now time.Time, keys ...config.Secret) (*testEnv, http.Handler) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Dedup.Window = time.Hour
	src.Secrets = keys
	cfg.Webhook.SourceList = []config.Source{src}
	full, ok := cfg.Webhook.Source(src.Name)
	if !ok {
		t.Fatalf("source %s not in force", src.Name)
	}
	env := newTestEnv(t, cfg)
	k := NewKeys(keys)
	env.rc.Keys = func(string) Keys { return k }
	env.rc.Now = func() time.Time { return now }
	return env, env.rc.Handler(full)
}

// postWith posts body to h with the given headers ("" values are left out).
func postWith(t *testing.T, h http.Handler, body []byte, headers map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// reply is hookmail's answer to an accepted webhook.
type reply struct{ Status, ID string }

func decodeReply(t *testing.T, rec *httptest.ResponseRecorder) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("reply %s: %v", rec.Body, err)
	}
	return r
}

// queued fetches the event a 200 queued reply names.
func (e *testEnv) queued(t *testing.T, rec *httptest.ResponseRecorder) *relay.Event {
	t.Helper()
	r := decodeReply(t, rec)
	if rec.Code != http.StatusOK || r.Status != "queued" {
		t.Fatalf("status %d, reply %s; want 200 queued", rec.Code, rec.Body)
	}
	it, err := e.queue.Get(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &it.Event
}

func (e *testEnv) depth(t *testing.T) int {
	t.Helper()
	st, err := e.queue.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Depth
}

// textbee's signing secrets: the dashboard fills in a UUIDv4.
const (
	textbeeKey    = "5f0c7a2e-8d4b-4c61-9a3e-1b2c3d4e5f60"
	textbeeOldKey = "0b9e6c1d-2f3a-4e5b-8c7d-6a5b4c3d2e1f"
)

// textbee's bodies, byte for byte: axios posts JSON.stringify of the
// payload its webhook service builds (base fields, then the event's), so
// no whitespace, and neither non-ASCII nor <, > or & escaped.
var (
	textbeeReceivedBody  = []byte(`{"smsId":"67a1c2d3e4f5a6b7c8d9e0f1","message":"Café at 5? 👋\nTom & Jerry <3","deviceId":"6790aabbccddeeff00112233","webhookSubscriptionId":"6791aabbccddeeff00112233","webhookEvent":"MESSAGE_RECEIVED","idempotencyKey":"3b241101-e2bb-4255-8caf-4136c566a962","sender":"+15551234567","receivedAt":"2025-10-05T13:00:35.208Z"}`)
	textbeeSentBody      = []byte(`{"smsId":"67a1c2d3e4f5a6b7c8d9e0f2","message":"Your code is 123456","deviceId":"6790aabbccddeeff00112233","webhookSubscriptionId":"6791aabbccddeeff00112233","webhookEvent":"MESSAGE_SENT","idempotencyKey":"9a7e4a1c-52a4-4d3e-9a57-7d0c2b6f1e10","smsBatchId":"67a1c2d3e4f5a6b7c8d9e0aa","status":"sent","recipient":"+15557654321","sentAt":"2025-10-05T13:01:02.000Z"}`)
	textbeeDeliveredBody = []byte(`{"smsId":"67a1c2d3e4f5a6b7c8d9e0f2","message":"Your code is 123456","deviceId":"6790aabbccddeeff00112233","webhookSubscriptionId":"6791aabbccddeeff00112233","webhookEvent":"MESSAGE_DELIVERED","idempotencyKey":"c0d3e9c4-0d1f-4f67-b1a5-3a4c5d6e7f80","smsBatchId":"67a1c2d3e4f5a6b7c8d9e0aa","status":"delivered","recipient":"+15557654321","sentAt":"2025-10-05T13:01:02.000Z","deliveredAt":"2025-10-05T13:01:09.512Z"}`)
	textbeeFailedBody    = []byte(`{"smsId":"67a1c2d3e4f5a6b7c8d9e0f3","message":"Reminder","deviceId":"6790aabbccddeeff00112233","webhookSubscriptionId":"6791aabbccddeeff00112233","webhookEvent":"MESSAGE_FAILED","idempotencyKey":"e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a8b9","smsBatchId":"67a1c2d3e4f5a6b7c8d9e0ab","status":"failed","recipient":"+15550001111","errorCode":"FCM_SEND_ERROR","errorMessage":"Requested entity was not found.","failedAt":"2025-10-05T13:02:00.000Z"}`)
	textbeeUnknownBody   = []byte(`{"smsId":"67a1c2d3e4f5a6b7c8d9e0f4","message":"Hi","deviceId":"6790aabbccddeeff00112233","webhookSubscriptionId":"6791aabbccddeeff00112233","webhookEvent":"UNKNOWN_STATE","idempotencyKey":"f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b","smsBatchId":"67a1c2d3e4f5a6b7c8d9e0ac","status":"pending","recipient":"+15550002222"}`)
	// SMS_STATUS_UPDATED is in textbee's enum with no payload of its own.
	textbeeOtherBody = []byte(`{"smsId":"67a1c2d3e4f5a6b7c8d9e0f5","message":"Hi","deviceId":"6790aabbccddeeff00112233","webhookSubscriptionId":"6791aabbccddeeff00112233","webhookEvent":"SMS_STATUS_UPDATED","idempotencyKey":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}`)
)

var textbeeBodies = [][]byte{textbeeReceivedBody, textbeeSentBody, textbeeDeliveredBody, textbeeFailedBody, textbeeUnknownBody, textbeeOtherBody}

// textbeeSigns are what textbee puts in X-Signature: the hex HMAC-SHA256
// of each body under the key, computed by Python, in one run; by body.
func textbeeSigns(t testing.TB, key string, bodies ...[]byte) map[string]string {
	t.Helper()
	in, err := json.Marshal(bodies) // []byte as base64: byte for byte
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Split(pythonOut(t, in, `import base64, hashlib, hmac, json, sys
for b in json.loads(sys.stdin.buffer.read()):
    print(hmac.new(sys.argv[1].encode(), base64.b64decode(b), hashlib.sha256).hexdigest())`, key), "\n")
	if len(out) != len(bodies) {
		t.Fatalf("python3 signed %d bodies, want %d", len(out), len(bodies))
	}
	sigs := map[string]string{}
	for i, b := range bodies {
		sigs[string(b)] = out[i]
	}
	return sigs
}

var textbeeSource = config.Source{Name: "textbee", Path: "/webhook/textbee", Format: config.FormatTextbee}

var textbeeNow = time.Date(2025, 10, 5, 13, 5, 0, 0, time.UTC)

func TestTextbeeQueuesEachEvent(t *testing.T) {
	env, h := formatEnv(t, textbeeSource, textbeeNow, textbeeKey, textbeeOldKey)
	sigs := map[string]map[string]string{textbeeKey: textbeeSigns(t, textbeeKey, textbeeBodies...), textbeeOldKey: textbeeSigns(t, textbeeOldKey, textbeeBodies...)}
	tests := []struct {
		name     string
		body     []byte
		key      string
		wantType string
		want     relay.Content
	}{
		{"received", textbeeReceivedBody, textbeeKey, relay.TypeSMS, relay.Content{
			From: "+15551234567", To: "6790aabbccddeeff00112233", Text: "Café at 5? 👋\nTom & Jerry <3",
			Sent: time.Date(2025, 10, 5, 13, 0, 35, 208e6, time.UTC), MessageID: "67a1c2d3e4f5a6b7c8d9e0f1",
		}},
		{"sent, under the old key", textbeeSentBody, textbeeOldKey, relay.TypeStatus, relay.Content{
			From: "6790aabbccddeeff00112233", To: "+15557654321", Status: "sent",
			Sent: time.Date(2025, 10, 5, 13, 1, 2, 0, time.UTC), MessageID: "67a1c2d3e4f5a6b7c8d9e0f2",
		}},
		{"delivered", textbeeDeliveredBody, textbeeKey, relay.TypeStatus, relay.Content{
			From: "6790aabbccddeeff00112233", To: "+15557654321", Status: "delivered",
			Sent: time.Date(2025, 10, 5, 13, 1, 9, 512e6, time.UTC), MessageID: "67a1c2d3e4f5a6b7c8d9e0f2",
		}},
		{"failed", textbeeFailedBody, textbeeKey, relay.TypeStatus, relay.Content{
			From: "6790aabbccddeeff00112233", To: "+15550001111", Status: "failed",
			Text: "Requested entity was not found. (code FCM_SEND_ERROR)",
			Sent: time.Date(2025, 10, 5, 13, 2, 0, 0, time.UTC), MessageID: "67a1c2d3e4f5a6b7c8d9e0f3",
		}},
		{"unknown state: status unknown", textbeeUnknownBody, textbeeKey, relay.TypeStatus, relay.Content{
			From: "6790aabbccddeeff00112233", To: "+15550002222", Text: "textbee reports the status pending",
			MessageID: "67a1c2d3e4f5a6b7c8d9e0f4",
		}},
		{"an event with no mapping keeps its name", textbeeOtherBody, textbeeKey, "sms_status_updated", relay.Content{
			MessageID: "67a1c2d3e4f5a6b7c8d9e0f5",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := postWith(t, h, tt.body, map[string]string{"Content-Type": "application/json", "X-Signature": sigs[tt.key][string(tt.body)]})
			ev := env.queued(t, rec)
			if ev.Type != tt.wantType || ev.Source != "textbee" || ev.Format != relay.FormatTextbee {
				t.Errorf("type %q source %q format %q, want %q textbee textbee", ev.Type, ev.Source, ev.Format, tt.wantType)
			}
			if got := ev.Canonical(); !contentEqual(got, tt.want) {
				t.Errorf("content\n got %+v\nwant %+v", got, tt.want)
			}
			var raw map[string]any
			if err := json.Unmarshal(tt.body, &raw); err != nil {
				t.Fatal(err)
			}
			for k, v := range raw {
				if ev.Data[k] != v {
					t.Errorf("data[%s] = %q, want %q", k, ev.Data[k], v)
				}
			}
		})
	}
	if got := env.depth(t); got != len(tests) {
		t.Errorf("depth %d, want %d", got, len(tests))
	}
}

// contentEqual compares contents, their times as instants.
func contentEqual(a, b relay.Content) bool {
	same := a.Sent.Equal(b.Sent)
	a.Sent, b.Sent = time.Time{}, time.Time{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return same && bytes.Equal(ja, jb)
}

func TestTextbeeRefusesWhatItCannotAuthenticate(t *testing.T) {
	env, h := formatEnv(t, textbeeSource, textbeeNow, textbeeKey)
	good := textbeeSigns(t, textbeeKey, textbeeReceivedBody)[string(textbeeReceivedBody)]
	// One byte of the text changed: "Café" becomes "Cafe".
	tampered := bytes.Replace(textbeeReceivedBody, []byte("Café"), []byte("Cafe"), 1)
	// What a receiver that re-serializes the parsed body would check:
	// Python's json.dumps adds spaces, so its signature is not textbee's.
	respaced := []byte(pythonOut(t, textbeeReceivedBody, `import json, sys
print(json.dumps(json.loads(sys.stdin.buffer.read()), ensure_ascii=False))`))
	tests := []struct {
		name string
		body []byte
		sig  string
	}{
		{"wrong key", textbeeReceivedBody, textbeeSigns(t, "a-key-that-is-not-the-sources", textbeeReceivedBody)[string(textbeeReceivedBody)]},
		{"tampered body", tampered, good},
		{"missing signature", textbeeReceivedBody, ""},
		{"sha256= prefix, which textbee does not send", textbeeReceivedBody, "sha256=" + good},
		{"truncated signature", textbeeReceivedBody, good[:32]},
		{"not hex", textbeeReceivedBody, strings.Repeat("zz", 32)},
		{"the key itself", textbeeReceivedBody, textbeeKey},
		{"signature of a re-serialized body", respaced, good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := postWith(t, h, tt.body, map[string]string{"Content-Type": "application/json", "X-Signature": tt.sig})
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "missing or wrong signature") {
				t.Fatalf("status %d body %s; want 401 missing or wrong signature", rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), textbeeKey) {
				t.Errorf("the reply shows the key: %s", rec.Body)
			}
		})
	}
	if got := env.depth(t); got != 0 {
		t.Errorf("depth %d after refusals, want 0", got)
	}
	if strings.Contains(env.logs.String(), textbeeKey) {
		t.Errorf("the log shows the key")
	}
}

// A webhook without X-Signature is refused before its body is read.
func TestTextbeeRefusesUnsignedBeforeReadingTheBody(t *testing.T) {
	_, h := formatEnv(t, textbeeSource, textbeeNow, textbeeKey)
	body := &countingReader{r: bytes.NewReader(textbeeReceivedBody)}
	req := httptest.NewRequest(http.MethodPost, "/webhook", body)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || body.n != 0 {
		t.Fatalf("status %d after reading %d bytes; want 401 before reading any", rec.Code, body.n)
	}
}

type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestTextbeeDeduplicates(t *testing.T) {
	env, h := formatEnv(t, textbeeSource, textbeeNow, textbeeKey)
	// A second subscription to the same URL: a new idempotencyKey and
	// subscription id for the same SMS.
	other := bytes.Replace(textbeeReceivedBody, []byte("3b241101-e2bb-4255-8caf-4136c566a962"), []byte("77777777-e2bb-4255-8caf-4136c566a962"), 1)
	other = bytes.Replace(other, []byte(`"webhookSubscriptionId":"6791`), []byte(`"webhookSubscriptionId":"6792`), 1)
	sigs := textbeeSigns(t, textbeeKey, textbeeReceivedBody, other, textbeeSentBody, textbeeDeliveredBody)
	send := func(body []byte) *httptest.ResponseRecorder {
		return postWith(t, h, body, map[string]string{"X-Signature": sigs[string(body)]})
	}
	first := env.queued(t, send(textbeeReceivedBody))
	// textbee's retry: the same stored payload, signed again.
	rec := send(textbeeReceivedBody)
	if r := decodeReply(t, rec); rec.Code != http.StatusOK || r.Status != "duplicate" || r.ID != first.ID {
		t.Fatalf("retry: status %d reply %s; want 200 duplicate %s", rec.Code, rec.Body, first.ID)
	}
	if r := decodeReply(t, send(other)); r.Status != "duplicate" || r.ID != first.ID {
		t.Fatalf("second subscription: reply %+v; want duplicate %s", r, first.ID)
	}
	// Sent and delivered are two reports on one SMS.
	env.queued(t, send(textbeeSentBody))
	env.queued(t, send(textbeeDeliveredBody))
	if got := env.depth(t); got != 3 {
		t.Errorf("depth %d, want 3", got)
	}
}

func TestTextbeeRefusesWhatDoesNotDecode(t *testing.T) {
	env, h := formatEnv(t, textbeeSource, textbeeNow, textbeeKey)
	many := []byte(`{"webhookEvent":"MESSAGE_RECEIVED"` + strings.Repeat(`,"x":1`, MaxFields) + `}`)
	tests := []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"no webhookEvent", []byte(`{"smsId":"1","message":"hi"}`), 400, "webhookEvent is missing"},
		{"webhookEvent not a name", []byte(`{"webhookEvent":"MESSAGE RECEIVED"}`), 400, "webhookEvent is missing"},
		{"not JSON", []byte(`smsId=1`), 400, "does not decode"},
		{"an array", []byte(`[{"webhookEvent":"MESSAGE_RECEIVED"}]`), 400, "does not decode"},
		{"two objects", []byte(`{"webhookEvent":"MESSAGE_RECEIVED"} {}`), 400, "does not decode"},
		{"too many fields", many, 413, "too many fields"},
	}
	var bodies [][]byte
	for _, tt := range tests {
		bodies = append(bodies, tt.body)
	}
	sigs := textbeeSigns(t, textbeeKey, bodies...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := postWith(t, h, tt.body, map[string]string{"X-Signature": sigs[string(tt.body)]})
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.reason) {
				t.Fatalf("status %d body %s; want %d %q", rec.Code, rec.Body, tt.status, tt.reason)
			}
		})
	}
	if got := env.depth(t); got != 0 {
		t.Errorf("depth %d, want 0", got)
	}
}

// checkDecoded checks what a format's decoder made of a body stays within
// the limits, and that sanitize leaves every string valid and NUL-free.
func checkDecoded(t *testing.T, d *decoded, nameSlack int) {
	t.Helper()
	ev := d.ev
	if ev == nil {
		t.Fatal("decoded without an event")
	}
	if len(ev.Data) > MaxFields {
		t.Errorf("%d fields, over MaxFields", len(ev.Data))
	}
	if len(ev.Type) == 0 || len(ev.Type) > MaxTypeBytes || strings.ToLower(ev.Type) != ev.Type {
		t.Errorf("type %q: empty, over MaxTypeBytes or not lower case", ev.Type)
	}
	for k, v := range ev.Data {
		if len(k) > MaxNameBytes+nameSlack || len(v) > MaxFieldBytes {
			t.Errorf("field %.40q: name %d bytes, value %d bytes", k, len(k), len(v))
		}
	}
	if len(ev.Content.Attachments) > MaxFields {
		t.Errorf("%d attachments", len(ev.Content.Attachments))
	}
	sanitize(ev)
	c := ev.Content
	for _, s := range []string{ev.Type, c.From, c.To, c.Text, c.MessageID, c.Status} {
		if !utf8.ValidString(s) || strings.Contains(s, "\x00") {
			t.Errorf("%q: invalid UTF-8 or NUL after sanitize", s)
		}
	}
}

func FuzzTextbeeDecode(f *testing.F) {
	for _, b := range textbeeBodies {
		f.Add(b)
	}
	f.Add([]byte(`{"webhookEvent":"MESSAGE_FAILED","smsId":{"a":[1,true,null]},"errorCode":"\u0000\ud800"}`))
	f.Add([]byte(`{"webhookEvent":"x","receivedAt":"9999-99-99T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, rerr := decodeTextbee(body)
		if rerr != nil {
			if rerr.status != http.StatusBadRequest && rerr.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for a body that does not decode", rerr.status)
			}
			return
		}
		checkDecoded(t, d, 0)
	})
}
