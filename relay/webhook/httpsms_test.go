package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// httpSMS's signing keys are whatever the user types (1 to 255 chars).
const (
	httpsmsKey    = "my-httpsms-signing-key-2025"
	httpsmsOldKey = "the-key-before-rotation"
	httpsmsURL    = "https://hooks.example.com/webhook/httpsms"
)

var (
	httpsmsNow    = time.Date(2025, 10, 5, 13, 0, 40, 0, time.UTC)
	httpsmsSource = config.Source{Name: "httpsms", Path: "/webhook/httpsms", Format: config.FormatHTTPSMS, PublicURL: config.MaskedURL(httpsmsURL)}
)

// httpSMS's bodies, byte for byte: json.Marshal of a cloudevents.Event
// (specversion, id, source, type, datacontenttype, time, then data, each
// payload's fields in its struct's order), which escapes &, < and > and
// leaves other characters as they are. The first is the example of
// httpSMS's own blog post on encryption with today's attachments field.
var (
	httpsmsReceivedBody  = []byte(`{"specversion":"1.0","id":"8dca3b0a-446a-4a5d-8d2a-95314926c4ed","source":"/v1/messages/receive","type":"message.phone.received","datacontenttype":"application/json","time":"2025-10-05T13:00:35.1605708Z","data":{"message_id":"0681b838-4157-44bb-a4ea-721e40ee7ca7","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","owner":"+37253920216","encrypted":false,"contact":"+37253920217","timestamp":"2025-10-05T16:00:34.949+03:00","content":"Tom \u0026 Jerry \u003c3 café 👋","sim":"SIM1","attachments":[]}}`)
	httpsmsMMSBody       = []byte(`{"specversion":"1.0","id":"1c7f0e42-9b1d-4d0e-8f57-2a6c4b3d5e70","source":"/v1/messages/receive","type":"message.phone.received","datacontenttype":"application/json","time":"2025-10-05T13:00:36.5Z","data":{"message_id":"5a0d9c3e-7b6f-4e2a-9c1d-8f7e6d5c4b3a","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","owner":"+37253920216","encrypted":false,"contact":"+37253920217","timestamp":"2025-10-05T13:00:35Z","content":"look","sim":"SIM2","attachments":["https://api.httpsms.com/v1/attachments/XtABz6zdeFMoBLoltz6SREDvRSh2/5a0d9c3e-7b6f-4e2a-9c1d-8f7e6d5c4b3a/0/photo.jpg","https://api.httpsms.com/v1/attachments/XtABz6zdeFMoBLoltz6SREDvRSh2/5a0d9c3e-7b6f-4e2a-9c1d-8f7e6d5c4b3a/1/clip.mp4"]}}`)
	httpsmsSentBody      = []byte(`{"specversion":"1.0","id":"2b8e1f53-ac2e-4e1f-9068-3b7d5c4e6f81","source":"/v1/messages/9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a/events","type":"message.phone.sent","datacontenttype":"application/json","time":"2025-10-05T13:00:37Z","data":{"id":"9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","request_id":null,"owner":"+37253920216","contact":"+37253920218","encrypted":false,"timestamp":"2025-10-05T13:00:36.25Z","content":"Your code is 123456","sim":"SIM1"}}`)
	httpsmsDeliveredBody = []byte(`{"specversion":"1.0","id":"3c9f2064-bd3f-4f20-a179-4c8e6d5f7092","source":"/v1/messages/9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a/events","type":"message.phone.delivered","datacontenttype":"application/json","time":"2025-10-05T13:00:39Z","data":{"id":"9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a","owner":"+37253920216","contact":"+37253920218","request_id":"order-42","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","encrypted":false,"timestamp":"2025-10-05T13:00:38.5Z","content":"Your code is 123456","sim":"SIM1"}}`)
	httpsmsFailedBody    = []byte(`{"specversion":"1.0","id":"4da03175-ce40-4031-b28a-5d9f7e6a81a3","source":"/v1/messages/6e5d4c3b-2a19-4807-96f5-e4d3c2b1a098/events","type":"message.send.failed","datacontenttype":"application/json","time":"2025-10-05T13:00:39Z","data":{"id":"6e5d4c3b-2a19-4807-96f5-e4d3c2b1a098","error_message":"RESULT_ERROR_GENERIC_FAILURE","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","owner":"+37253920216","request_id":null,"contact":"+37253920219","timestamp":"2025-10-05T13:00:38Z","encrypted":false,"content":"Reminder","sim":"SIM2"}}`)
	httpsmsExpiredBody   = []byte(`{"specversion":"1.0","id":"5eb14286-df51-4142-c39b-6ea08f7b92b4","source":"/v1/messages/7f6e5d4c-3b2a-4918-a706-f5e4d3c2b1a9/events","type":"message.send.expired","datacontenttype":"application/json","time":"2025-10-05T13:00:39Z","data":{"message_id":"7f6e5d4c-3b2a-4918-a706-f5e4d3c2b1a9","owner":"+37253920216","send_attempt_count":1,"is_final":false,"request_id":null,"contact":"+37253920220","encrypted":false,"user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","timestamp":"2025-10-05T13:00:39Z","content":"Hello","sim":"SIM1"}}`)
	httpsmsExpiredFinal  = []byte(`{"specversion":"1.0","id":"6fc25397-e062-4253-d4ac-7fb19a8ca3c5","source":"/v1/messages/7f6e5d4c-3b2a-4918-a706-f5e4d3c2b1a9/events","type":"message.send.expired","datacontenttype":"application/json","time":"2025-10-05T13:00:39Z","data":{"message_id":"7f6e5d4c-3b2a-4918-a706-f5e4d3c2b1a9","owner":"+37253920216","send_attempt_count":2,"is_final":true,"request_id":null,"contact":"+37253920220","encrypted":false,"user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","timestamp":"2025-10-05T13:00:39Z","content":"Hello","sim":"SIM1"}}`)
	httpsmsMissedBody    = []byte(`{"specversion":"1.0","id":"70d364a8-f173-4364-e5bd-80c2ab9db4d6","source":"/v1/messages/calls/missed","type":"message.call.missed","datacontenttype":"application/json","time":"2025-10-05T13:00:39Z","data":{"message_id":"81e475b9-0284-4475-86ce-91d3bc0ec5e7","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","owner":"+37253920216","contact":"+37253920221","timestamp":"2025-10-05T13:00:30Z","sim":"SIM1"}}`)
	httpsmsOfflineBody   = []byte(`{"specversion":"1.0","id":"92f586ca-1395-4586-97df-a2e4cd1fd6f8","source":"/v1/heartbeats","type":"phone.heartbeat.offline","datacontenttype":"application/json","time":"2025-10-05T13:00:39Z","data":{"phone_id":"a3069712-24a6-4697-88e0-b3f5de20e709","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","last_heartbeat_timestamp":"2025-10-05T12:30:00Z","timestamp":"2025-10-05T13:00:39Z","monitor_id":"b417a823-35b7-47a8-99f1-c406ef31f81a","owner":"+37253920216"}}`)
)

var httpsmsBodies = [][]byte{httpsmsReceivedBody, httpsmsMMSBody, httpsmsSentBody, httpsmsDeliveredBody, httpsmsFailedBody, httpsmsExpiredBody, httpsmsExpiredFinal, httpsmsMissedBody, httpsmsOfflineBody}

// jwtSpec is one token for Python to build: header and claims as given,
// signed by sign ("HS256", "HS512", or "" for no signature) under key.
type jwtSpec struct {
	Header map[string]any `json:"header"`
	Claims map[string]any `json:"claims"`
	Key    string         `json:"key"`
	Sign   string         `json:"sign"`
}

// httpsmsClaims are the claims httpSMS's getAuthToken makes at now.
func httpsmsClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": "api.httpsms.com", "sub": "XtABz6zdeFMoBLoltz6SREDvRSh2", "aud": []string{httpsmsURL},
		"exp": now.Add(10 * time.Minute).Unix(), "nbf": now.Add(-10 * time.Minute).Unix(), "iat": now.Unix(),
	}
}

func hs256(key string, claims map[string]any) jwtSpec {
	return jwtSpec{Header: map[string]any{"alg": "HS256", "typ": "JWT"}, Claims: claims, Key: key, Sign: "HS256"}
}

// httpsmsTokens builds the tokens with Python's hmac, hashlib and base64,
// in one run.
func httpsmsTokens(t testing.TB, specs ...jwtSpec) []string {
	t.Helper()
	in, err := json.Marshal(specs)
	if err != nil {
		t.Fatal(err)
	}
	out := pythonOut(t, in, `import base64, hashlib, hmac, json, sys
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
for s in json.loads(sys.stdin.buffer.read()):
    head = b64(json.dumps(s["header"], separators=(",", ":")).encode())
    body = b64(json.dumps(s["claims"], separators=(",", ":")).encode())
    msg = (head + "." + body).encode()
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}.get(s["sign"])
    sig = b64(hmac.new(s["key"].encode(), msg, digest).digest()) if digest else ""
    print(head + "." + body + "." + sig)`)
	tokens := strings.Split(out, "\n")
	if len(tokens) != len(specs) {
		t.Fatalf("python3 made %d tokens, want %d", len(tokens), len(specs))
	}
	return tokens
}

func postHTTPSMS(t *testing.T, h http.Handler, body []byte, token string) *httptest.ResponseRecorder {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return postWith(t, h, body, map[string]string{"Content-Type": "application/json", "Authorization": auth, "X-Event-Type": "message.phone.received"})
}

func TestHTTPSMSQueuesEachEvent(t *testing.T) {
	env, h := formatEnv(t, httpsmsSource, httpsmsNow, httpsmsKey, httpsmsOldKey)
	tokens := httpsmsTokens(t, hs256(httpsmsKey, httpsmsClaims(httpsmsNow)), hs256(httpsmsOldKey, httpsmsClaims(httpsmsNow.Add(-9*time.Minute))))
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	attachment := func(i, name string) relay.Attachment {
		return relay.Attachment{Name: name, URL: "https://api.httpsms.com/v1/attachments/XtABz6zdeFMoBLoltz6SREDvRSh2/5a0d9c3e-7b6f-4e2a-9c1d-8f7e6d5c4b3a/" + i + "/" + name}
	}
	tests := []struct {
		name     string
		body     []byte
		token    string
		wantType string
		want     relay.Content
		data     map[string]string
	}{
		{"received", httpsmsReceivedBody, tokens[0], relay.TypeSMS, relay.Content{
			From: "+37253920217", To: "+37253920216", Text: "Tom & Jerry <3 café 👋",
			Sent: at("2025-10-05T13:00:34.949Z"), MessageID: "0681b838-4157-44bb-a4ea-721e40ee7ca7",
		}, map[string]string{"sim": "SIM1", "encrypted": "0", "event_id": "8dca3b0a-446a-4a5d-8d2a-95314926c4ed",
			"event_type": "message.phone.received", "event_source": "/v1/messages/receive", "event_time": "2025-10-05T13:00:35.1605708Z"}},
		{"received with attachments, under the old key's token made 9 minutes ago", httpsmsMMSBody, tokens[1], relay.TypeMMS, relay.Content{
			From: "+37253920217", To: "+37253920216", Text: "look", Sent: at("2025-10-05T13:00:35Z"),
			MessageID:   "5a0d9c3e-7b6f-4e2a-9c1d-8f7e6d5c4b3a",
			Attachments: []relay.Attachment{attachment("0", "photo.jpg"), attachment("1", "clip.mp4")},
		}, map[string]string{"sim": "SIM2"}},
		{"sent", httpsmsSentBody, tokens[0], relay.TypeStatus, relay.Content{
			From: "+37253920216", To: "+37253920218", Status: "sent", Sent: at("2025-10-05T13:00:36.25Z"),
			MessageID: "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
		}, map[string]string{"content": "Your code is 123456"}},
		{"delivered", httpsmsDeliveredBody, tokens[0], relay.TypeStatus, relay.Content{
			From: "+37253920216", To: "+37253920218", Status: "delivered", Sent: at("2025-10-05T13:00:38.5Z"),
			MessageID: "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
		}, map[string]string{"request_id": "order-42"}},
		{"send failed", httpsmsFailedBody, tokens[0], relay.TypeStatus, relay.Content{
			From: "+37253920216", To: "+37253920219", Status: "failed", Text: "RESULT_ERROR_GENERIC_FAILURE",
			Sent: at("2025-10-05T13:00:38Z"), MessageID: "6e5d4c3b-2a19-4807-96f5-e4d3c2b1a098",
		}, nil},
		{"expired, httpSMS tries again", httpsmsExpiredBody, tokens[0], relay.TypeStatus, relay.Content{
			From: "+37253920216", To: "+37253920220", Text: "expired after 1 send attempt(s); httpSMS will try again",
			Sent: at("2025-10-05T13:00:39Z"), MessageID: "7f6e5d4c-3b2a-4918-a706-f5e4d3c2b1a9",
		}, map[string]string{"is_final": "0"}},
		{"expired for good", httpsmsExpiredFinal, tokens[0], relay.TypeStatus, relay.Content{
			From: "+37253920216", To: "+37253920220", Status: "failed", Text: "expired after 2 send attempt(s); httpSMS gives up",
			Sent: at("2025-10-05T13:00:39Z"), MessageID: "7f6e5d4c-3b2a-4918-a706-f5e4d3c2b1a9",
		}, nil},
		{"missed call", httpsmsMissedBody, tokens[0], "message_call_missed", relay.Content{
			From: "+37253920221", To: "+37253920216", Sent: at("2025-10-05T13:00:30Z"), MessageID: "81e475b9-0284-4475-86ce-91d3bc0ec5e7",
		}, nil},
		{"phone offline", httpsmsOfflineBody, tokens[0], "phone_heartbeat_offline", relay.Content{
			To: "+37253920216", Sent: at("2025-10-05T13:00:39Z"),
		}, map[string]string{"phone_id": "a3069712-24a6-4697-88e0-b3f5de20e709", "last_heartbeat_timestamp": "2025-10-05T12:30:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := env.queued(t, postHTTPSMS(t, h, tt.body, tt.token))
			if ev.Type != tt.wantType || ev.Source != "httpsms" || ev.Format != relay.FormatHTTPSMS {
				t.Errorf("type %q source %q format %q, want %q httpsms httpsms", ev.Type, ev.Source, ev.Format, tt.wantType)
			}
			if got := ev.Canonical(); !contentEqual(got, tt.want) {
				t.Errorf("content\n got %+v\nwant %+v", got, tt.want)
			}
			for k, v := range tt.data {
				if ev.Data[k] != v {
					t.Errorf("data[%s] = %q, want %q", k, ev.Data[k], v)
				}
			}
			for k := range ev.Data {
				if strings.HasPrefix(k, "data.") {
					t.Errorf("data field %q kept its data. prefix", k)
				}
			}
		})
	}
}

// The token is checked the way httpSMS makes it: HS256 under one of the
// source's keys, audience the URL it posts to, within exp and nbf.
func TestHTTPSMSRefusesWhatItCannotAuthenticate(t *testing.T) {
	env, h := formatEnv(t, httpsmsSource, httpsmsNow, httpsmsKey)
	with := func(change func(c map[string]any)) map[string]any {
		c := httpsmsClaims(httpsmsNow)
		change(c)
		return c
	}
	good := httpsmsClaims(httpsmsNow)
	specs := []struct {
		name string
		spec jwtSpec
	}{
		{"wrong key", hs256("not-the-sources-key", good)},
		{"wrong audience", hs256(httpsmsKey, with(func(c map[string]any) { c["aud"] = []string{"https://hooks.example.com/webhook/other"} }))},
		{"audience with a trailing slash", hs256(httpsmsKey, with(func(c map[string]any) { c["aud"] = []string{httpsmsURL + "/"} }))},
		{"no audience", hs256(httpsmsKey, with(func(c map[string]any) { delete(c, "aud") }))},
		{"expired a second ago", hs256(httpsmsKey, with(func(c map[string]any) { c["exp"] = httpsmsNow.Add(-time.Second).Unix() }))},
		{"made 11 minutes ago", hs256(httpsmsKey, httpsmsClaims(httpsmsNow.Add(-11*time.Minute)))},
		{"no expiry", hs256(httpsmsKey, with(func(c map[string]any) { delete(c, "exp") }))},
		{"not yet valid", hs256(httpsmsKey, with(func(c map[string]any) { c["nbf"] = httpsmsNow.Add(time.Minute).Unix() }))},
		{"alg none", jwtSpec{Header: map[string]any{"alg": "none", "typ": "JWT"}, Claims: good}},
		{"alg RS256, HMAC-signed with the key", jwtSpec{Header: map[string]any{"alg": "RS256", "typ": "JWT"}, Claims: good, Key: httpsmsKey, Sign: "HS256"}},
		{"HS512 under the key", jwtSpec{Header: map[string]any{"alg": "HS512", "typ": "JWT"}, Claims: good, Key: httpsmsKey, Sign: "HS512"}},
		{"alg HS256 with no signature", jwtSpec{Header: map[string]any{"alg": "HS256", "typ": "JWT"}, Claims: good}},
	}
	all := make([]jwtSpec, 0, len(specs)+1)
	for _, s := range specs {
		all = append(all, s.spec)
	}
	all = append(all, hs256(httpsmsKey, good))
	tokens := httpsmsTokens(t, all...)
	valid := tokens[len(tokens)-1]
	head, rest, _ := strings.Cut(valid, ".")
	claims, sig, _ := strings.Cut(rest, ".")
	// The claims of another token (a later exp) with this one's signature.
	other := httpsmsTokens(t, hs256(httpsmsKey, with(func(c map[string]any) { c["exp"] = httpsmsNow.Add(time.Hour).Unix() })))[0]
	otherClaims := strings.Split(other, ".")[1]
	cases := map[string]string{
		"missing":                          "",
		"tampered claims":                  head + "." + otherClaims + "." + sig,
		"signature dropped":                head + "." + claims + ".",
		"the key itself as the token":      httpsmsKey,
		"the valid token, its claims only": claims,
	}
	for i, s := range specs {
		cases[s.name] = tokens[i]
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			rec := postHTTPSMS(t, h, httpsmsReceivedBody, token)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "missing or wrong signature") {
				t.Fatalf("status %d body %s; want 401", rec.Code, rec.Body)
			}
		})
	}
	for _, auth := range []string{"Basic " + valid, valid, "Bearer", "Bearer " + strings.Repeat("a", maxHTTPSMSToken+1)} {
		rec := postWith(t, h, httpsmsReceivedBody, map[string]string{"Authorization": auth})
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %.20q: status %d, want 401", auth, rec.Code)
		}
	}
	if got := env.depth(t); got != 0 {
		t.Errorf("depth %d after refusals, want 0", got)
	}
	if strings.Contains(env.logs.String(), httpsmsKey) {
		t.Errorf("the log shows the key")
	}
	// The same token is good, the scheme's case aside: what was refused
	// was the token.
	env.queued(t, postWith(t, h, httpsmsReceivedBody, map[string]string{"Authorization": "bearer " + valid}))
}

// A webhook without a bearer token is refused before its body is read.
func TestHTTPSMSRefusesUnauthorizedBeforeReadingTheBody(t *testing.T) {
	_, h := formatEnv(t, httpsmsSource, httpsmsNow, httpsmsKey)
	body := &countingReader{r: bytes.NewReader(httpsmsReceivedBody)}
	req := httptest.NewRequest(http.MethodPost, "/webhook", body)
	req.Header.Set("X-Event-Type", "message.phone.received")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || body.n != 0 {
		t.Fatalf("status %d after reading %d bytes; want 401 before reading any", rec.Code, body.n)
	}
}

// The JWT authenticates the sender, not the body: httpSMS signs no part
// of it, so a body changed in transit under a valid token is taken. The
// README says so; this test pins it, so a change here is a change there.
func TestHTTPSMSTokenDoesNotCoverTheBody(t *testing.T) {
	env, h := formatEnv(t, httpsmsSource, httpsmsNow, httpsmsKey)
	token := httpsmsTokens(t, hs256(httpsmsKey, httpsmsClaims(httpsmsNow)))[0]
	changed := bytes.Replace(httpsmsReceivedBody, []byte("café"), []byte("cafe"), 1)
	if ev := env.queued(t, postHTTPSMS(t, h, changed, token)); !strings.Contains(ev.Content.Text, "cafe") {
		t.Errorf("text %q", ev.Content.Text)
	}
}

func TestHTTPSMSDeduplicates(t *testing.T) {
	env, h := formatEnv(t, httpsmsSource, httpsmsNow, httpsmsKey)
	tokens := httpsmsTokens(t, hs256(httpsmsKey, httpsmsClaims(httpsmsNow)), hs256(httpsmsKey, httpsmsClaims(httpsmsNow.Add(time.Second))))
	first := env.queued(t, postHTTPSMS(t, h, httpsmsReceivedBody, tokens[0]))
	// httpSMS's second attempt: the same event under a new token.
	rec := postHTTPSMS(t, h, httpsmsReceivedBody, tokens[1])
	if r := decodeReply(t, rec); rec.Code != http.StatusOK || r.Status != "duplicate" || r.ID != first.ID {
		t.Fatalf("second attempt: status %d reply %s; want 200 duplicate %s", rec.Code, rec.Body, first.ID)
	}
	// A second webhook to the same URL: a new CloudEvent id, the same message.
	other := bytes.Replace(httpsmsReceivedBody, []byte("8dca3b0a-446a-4a5d-8d2a-95314926c4ed"), []byte("99ca3b0a-446a-4a5d-8d2a-95314926c4ed"), 1)
	if r := decodeReply(t, postHTTPSMS(t, h, other, tokens[0])); r.Status != "duplicate" || r.ID != first.ID {
		t.Fatalf("second webhook: reply %+v; want duplicate %s", r, first.ID)
	}
	// Reports on one message are each their own event, and each expiry.
	for _, b := range [][]byte{httpsmsSentBody, httpsmsDeliveredBody, httpsmsExpiredBody, httpsmsExpiredFinal} {
		env.queued(t, postHTTPSMS(t, h, b, tokens[0]))
	}
	// An event about no message is known by its CloudEvent id.
	env.queued(t, postHTTPSMS(t, h, httpsmsOfflineBody, tokens[0]))
	if r := decodeReply(t, postHTTPSMS(t, h, httpsmsOfflineBody, tokens[1])); r.Status != "duplicate" {
		t.Fatalf("offline again: reply %+v; want duplicate", r)
	}
	if got := env.depth(t); got != 6 {
		t.Errorf("depth %d, want 6", got)
	}
}

func TestHTTPSMSRefusesWhatDoesNotDecode(t *testing.T) {
	env, h := formatEnv(t, httpsmsSource, httpsmsNow, httpsmsKey)
	token := httpsmsTokens(t, hs256(httpsmsKey, httpsmsClaims(httpsmsNow)))[0]
	many := []byte(`{"type":"message.phone.received","data":{"attachments":[` + strings.Repeat(`"u",`, MaxFields) + `"u"]}}`)
	tests := []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"no type", []byte(`{"specversion":"1.0","data":{"content":"hi"}}`), 400, "type is missing"},
		{"type not a name", []byte(`{"type":"message phone received"}`), 400, "type is missing"},
		{"not JSON", []byte(`type=message.phone.received`), 400, "does not decode"},
		{"truncated", httpsmsReceivedBody[:len(httpsmsReceivedBody)-1], 400, "does not decode"},
		{"too many attachments", many, 413, "too many fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := postHTTPSMS(t, h, tt.body, token)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.reason) {
				t.Fatalf("status %d body %s; want %d %q", rec.Code, rec.Body, tt.status, tt.reason)
			}
		})
	}
	if got := env.depth(t); got != 0 {
		t.Errorf("depth %d, want 0", got)
	}
}

func FuzzHTTPSMSDecode(f *testing.F) {
	for _, b := range httpsmsBodies {
		f.Add(b)
	}
	f.Add([]byte(`{"type":"message.phone.received","data":{"attachments":["::", "", "/", {"a":1}],"message_id":null}}`))
	f.Add([]byte(`{"type":"x","data.type":"y","data":"not an object","event_id":"z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, rerr := decodeHTTPSMS(body)
		if rerr != nil {
			if rerr.status != http.StatusBadRequest && rerr.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for a body that does not decode", rerr.status)
			}
			return
		}
		// Attributes are named event_<name>: six bytes past a name's bound.
		checkDecoded(t, d, len("event_"))
	})
}
