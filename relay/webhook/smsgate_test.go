package webhook

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// The bodies under testdata/smsgate are what SMS Gateway for Android
// (capcom6/android-sms-gateway 1.68) sends: WebHookEventDTO and the
// payload classes of modules/webhooks, serialized by Gson as the app
// configures it (compact, nulls left out, "=<>&'" escaped as \u003d and
// the like, dates "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"; sms-failed's
// "+-5:00" is what the app writes for New York before Android 7).

// smsgateKey is a signing key like the app's default: an 8-character
// NanoId it generates on first use.
const smsgateKey = "Kq3v_X9m"

// smsgateNow is the test's clock, a minute after the bodies' own times.
var smsgateNow = time.Date(2024, 6, 7, 4, 46, 0, 0, time.UTC)

func smsgateSource() config.Source {
	return config.Source{Name: "android", Path: "/webhook/smsgate", Format: config.FormatSMSGate,
		ReplayWindow: config.DefaultReplayWindow, MaxBodyBytes: config.DefaultSMSGateBodyBytes}
}

func newSMSGateEnv(t *testing.T) (*testEnv, http.Handler) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Dedup.Window = 24 * time.Hour
	env := newTestEnv(t, cfg)
	keys := NewKeys([]config.Secret{"the-next-key-for-rotation", smsgateKey})
	env.rc.Keys = func(string) Keys { return keys }
	env.rc.Now = func() time.Time { return smsgateNow }
	return env, env.rc.Handler(smsgateSource())
}

func readSMSGate(t testing.TB, name string) []byte {
	t.Helper()
	return readTestdata(t, filepath.Join("smsgate", name))
}

// smsgateSign signs as the app's PayloadSingingPlugin does, in Python:
// hex(HMAC-SHA256(key, body + timestamp)). One python3 serves the whole
// test binary (it ends when the binary does and its stdin closes).
func smsgateSign(t *testing.T, key string, body []byte, ts string) string {
	t.Helper()
	py := &smsgatePython
	py.once.Do(func() {
		cmd := exec.Command("python3", "-c", `import base64,hashlib,hmac,sys
for line in sys.stdin:
    k, b, ts = (base64.b64decode(x) for x in line.rstrip("\n").split(" "))
    print(hmac.new(k, b + ts, hashlib.sha256).hexdigest(), flush=True)`)
		var out io.ReadCloser
		if py.in, py.err = cmd.StdinPipe(); py.err == nil {
			if out, py.err = cmd.StdoutPipe(); py.err == nil {
				py.out = bufio.NewReader(out)
				py.err = cmd.Start()
			}
		}
	})
	if py.err != nil {
		t.Fatalf("python3: %v", py.err)
	}
	b64 := base64.StdEncoding.EncodeToString
	py.mu.Lock()
	defer py.mu.Unlock()
	if _, err := fmt.Fprintf(py.in, "%s %s %s\n", b64([]byte(key)), b64(body), b64([]byte(ts))); err != nil {
		t.Fatalf("python3: %v", err)
	}
	line, err := py.out.ReadString('\n')
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	return strings.TrimSpace(line)
}

var smsgatePython struct {
	once sync.Once
	err  error
	mu   sync.Mutex
	in   io.WriteCloser
	out  *bufio.Reader
}

// postSMSGate posts body as the app does, with the given headers ("" for
// none).
func postSMSGate(t *testing.T, h http.Handler, body io.Reader, sig, ts string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook/smsgate", body)
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	req.Header.Set("User-Agent", "me.capcom.smsgateway/1.68.0")
	if sig != "" {
		req.Header.Set("X-Signature", sig)
	}
	if ts != "" {
		req.Header.Set("X-Timestamp", ts)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// sendSMSGate posts a body signed with the test key at the test's clock.
func sendSMSGate(t *testing.T, h http.Handler, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	ts := strconv.FormatInt(smsgateNow.Unix(), 10)
	return postSMSGate(t, h, bytes.NewReader(body), smsgateSign(t, smsgateKey, body, ts), ts)
}

type smsgateReply struct{ Status, ID string }

func wantReply(t *testing.T, rec *httptest.ResponseRecorder, status string) smsgateReply {
	t.Helper()
	var r smsgateReply
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil || r.Status != status {
		t.Fatalf("answer %d %s, want 200 %q", rec.Code, rec.Body, status)
	}
	return r
}

func storedEvent(t *testing.T, env *testEnv, id string) *relay.Event {
	t.Helper()
	it, err := env.queue.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return &it.Event
}

func wantDepth(t *testing.T, env *testEnv, n int) {
	t.Helper()
	st, err := env.queue.Stats(t.Context())
	if err != nil || st.Depth != n {
		t.Fatalf("queue depth %d (%v), want %d", st.Depth, err, n)
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestSMSGateQueuesEachEvent(t *testing.T) {
	const device = "ffffffffceb0b1db0000018e937c815b"
	tests := []struct {
		file     string
		wantType string
		want     relay.Content
		wantData map[string]string
	}{
		{"sms-received.json", relay.TypeSMS, relay.Content{
			From: "+19162255887", To: device + " SIM 1", Text: "Café at 5? <3 Tom & Jerry's key = 42 😀",
			Sent: at("2024-06-07T04:41:31Z"), MessageID: "9f2c01ab",
		}, map[string]string{"event": "sms:received", "id": "Ey6ECgOkVVFjz3CL48B8C", "deviceId": device, "payload.simNumber": "1"}},
		{"sms-sent.json", relay.TypeStatus, relay.Content{
			From: "+79990001122", To: "+19162255887", Status: "sent", Sent: at("2024-06-07T04:42:05.512Z"), MessageID: "zXbXvE0pCjfU3kqHqEYyQ",
		}, map[string]string{"payload.partsCount": "1"}},
		{"sms-delivered.json", relay.TypeStatus, relay.Content{
			From: "+79990001122", To: "+19162255887", Status: "delivered", Sent: at("2024-06-07T04:42:09.077Z"), MessageID: "zXbXvE0pCjfU3kqHqEYyQ",
		}, nil},
		{"sms-failed.json", relay.TypeStatus, relay.Content{
			To: "+19162255887", Status: "failed", Text: "RESULT_ERROR_NO_SERVICE", Sent: at("2024-01-01T12:34:56.789Z"), MessageID: "Yh6tLq0Wc2VbN8mKs4JdE",
		}, map[string]string{"payload.reason": "RESULT_ERROR_NO_SERVICE", "payload.simNumber": "2"}},
		{"sms-cancelled.json", relay.TypeStatus, relay.Content{
			To: "+19162255887", Status: "cancelled", Sent: at("2024-06-07T11:50:00Z"), MessageID: "Nq3Zx8Vt0Lc5Wb1Md7Ks2",
		}, nil},
		{"sms-data-received.json", "sms:data-received", relay.Content{
			From: "+19162255887", To: device + " SIM 1", Sent: at("2024-06-07T04:43:00Z"), MessageID: "1c07e5d2",
		}, map[string]string{"payload.data": "AQJoZWxsb/8="}},
		{"mms-received.json", relay.TypeMMS, relay.Content{
			From: "+19162255887", To: "+79990001122", Text: "Photos", Sent: at("2024-06-07T04:45:12Z"), MessageID: "mms-0001@mmsc.example.net",
		}, map[string]string{"payload.transactionId": "T18f3a2b4c5d", "payload.size": "48213", "payload.contentClass": "image-basic"}},
		{"mms-downloaded.json", relay.TypeMMS, relay.Content{
			From: "+19162255887", To: "+79990001122", Text: "Two files for you", Sent: at("2024-06-07T04:45:40Z"), MessageID: "mms-0001@mmsc.example.net",
			Attachments: []relay.Attachment{
				{Name: "pixel.gif", ContentType: "image/gif", Size: 43,
					Data: mustHex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")},
				{Name: "notes.txt", ContentType: "text/plain; charset=utf-8", Size: 21, Data: []byte("Notes: café ½ = ok\n")},
			},
		}, map[string]string{"payload.attachments.0.name": "pixel.gif", "payload.attachments.1.partId": "32", "payload.subject": "Photos"}},
		{"app-started.json", "app:started", relay.Content{},
			map[string]string{"payload.simCards.0.phoneNumber": "+79990001122", "payload.simCards.0.slotIndex": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			env, h := newSMSGateEnv(t)
			r := wantReply(t, sendSMSGate(t, h, readSMSGate(t, tt.file)), "queued")
			ev := storedEvent(t, env, r.ID)
			if ev.Type != tt.wantType || ev.Source != "android" || ev.Format != relay.FormatSMSGate {
				t.Errorf("type %q source %q format %q, want %q android smsgate", ev.Type, ev.Source, ev.Format, tt.wantType)
			}
			got := ev.Canonical()
			if !got.Sent.Equal(tt.want.Sent) {
				t.Errorf("sent %v, want %v", got.Sent, tt.want.Sent)
			}
			got.Sent, tt.want.Sent = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("content\n got %+v\nwant %+v", got, tt.want)
			}
			for k, v := range tt.wantData {
				if ev.Data[k] != v {
					t.Errorf("data[%s] = %q, want %q", k, ev.Data[k], v)
				}
			}
			for k := range ev.Data {
				if strings.HasSuffix(k, ".data") && strings.Contains(k, "attachments") {
					t.Errorf("attachment bytes kept in data field %s", k)
				}
			}
		})
	}
}

func TestSMSGateRefusesUnauthentic(t *testing.T) {
	body := readSMSGate(t, "sms-received.json")
	now := strconv.FormatInt(smsgateNow.Unix(), 10)
	sig := func(key, ts string) string { return smsgateSign(t, key, body, ts) }
	window := int64(config.DefaultReplayWindow / time.Second)
	stale := strconv.FormatInt(smsgateNow.Unix()-window-1, 10)
	future := strconv.FormatInt(smsgateNow.Unix()+window+1, 10)
	tampered := bytes.Replace(body, []byte("key \\u003d 42"), []byte("key \\u003d 43"), 1)
	tests := []struct {
		name     string
		body     []byte
		sig, ts  string
		wantBody string
	}{
		{"wrong key", body, sig("not-the-key", now), now, "missing or wrong signature"},
		{"tampered body", tampered, sig(smsgateKey, now), now, "missing or wrong signature"},
		{"timestamp changed after signing", body, sig(smsgateKey, now), strconv.FormatInt(smsgateNow.Unix()-1, 10), "missing or wrong signature"},
		{"body signed without the timestamp", body, smsgateSign(t, smsgateKey, body, ""), now, "missing or wrong signature"},
		{"signature not hex", body, "not-hex", now, "missing or wrong signature"},
		{"signature truncated", body, sig(smsgateKey, now)[:32], now, "missing or wrong signature"},
		{"timestamp not a number", body, sig(smsgateKey, "soon"), "soon", "missing or wrong signature"},
		{"stale timestamp", body, sig(smsgateKey, stale), stale, "outside the replay window"},
		{"future timestamp", body, sig(smsgateKey, future), future, "outside the replay window"},
		{"missing signature", body, "", now, "missing or wrong signature"},
		{"missing timestamp", body, sig(smsgateKey, now), "", "missing or wrong signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, h := newSMSGateEnv(t)
			spy := &readSpy{r: bytes.NewReader(tt.body)}
			rec := postSMSGate(t, h, spy, tt.sig, tt.ts)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Fatalf("answer %d %s, want 401 %q", rec.Code, rec.Body, tt.wantBody)
			}
			if (tt.sig == "" || tt.ts == "") && spy.read {
				t.Error("the body was read though a signing header was missing")
			}
			if strings.Contains(rec.Body.String(), smsgateKey) || strings.Contains(env.logs.String(), smsgateKey) {
				t.Error("the key shows in the answer or the log")
			}
			wantDepth(t, env, 0)
		})
	}
	t.Run("timestamp at the edge of the window", func(t *testing.T) {
		env, h := newSMSGateEnv(t)
		for _, ts := range []string{strconv.FormatInt(smsgateNow.Unix()-window, 10), strconv.FormatInt(smsgateNow.Unix()+window, 10)} {
			rec := postSMSGate(t, h, bytes.NewReader(body), sig(smsgateKey, ts), ts)
			if rec.Code != http.StatusOK {
				t.Fatalf("X-Timestamp %s: answer %d %s, want 200", ts, rec.Code, rec.Body)
			}
		}
		wantDepth(t, env, 1)
	})
}

// readSpy notes whether the handler read the body.
type readSpy struct {
	r    io.Reader
	read bool
}

func (s *readSpy) Read(p []byte) (int, error) {
	s.read = true
	return s.r.Read(p)
}

func TestSMSGateDuplicates(t *testing.T) {
	env, h := newSMSGateEnv(t)
	first := wantReply(t, sendSMSGate(t, h, readSMSGate(t, "sms-received.json")), "queued")
	// The same message under another envelope id (exported again, or a
	// second webhook registered for the event), then a retry of the first
	// signed a few seconds later.
	if dup := wantReply(t, sendSMSGate(t, h, readSMSGate(t, "sms-received-again.json")), "duplicate"); dup.ID != first.ID {
		t.Errorf("duplicate names %s, want the first event %s", dup.ID, first.ID)
	}
	body := readSMSGate(t, "sms-received.json")
	later := strconv.FormatInt(smsgateNow.Unix()+7, 10)
	wantReply(t, postSMSGate(t, h, bytes.NewReader(body), smsgateSign(t, smsgateKey, body, later), later), "duplicate")
	wantDepth(t, env, 1)

	// One report per recipient of a message sent to two; the sent report
	// on the same message is a report of its own.
	wantReply(t, sendSMSGate(t, h, readSMSGate(t, "sms-delivered.json")), "queued")
	wantReply(t, sendSMSGate(t, h, readSMSGate(t, "sms-delivered-second-recipient.json")), "queued")
	wantReply(t, sendSMSGate(t, h, readSMSGate(t, "sms-sent.json")), "queued")
	wantReply(t, sendSMSGate(t, h, readSMSGate(t, "sms-delivered.json")), "duplicate")
	wantDepth(t, env, 4)
}

func TestSMSGatePingIgnored(t *testing.T) {
	env, h := newSMSGateEnv(t)
	wantReply(t, sendSMSGate(t, h, readSMSGate(t, "system-ping.json")), "ignored")
	wantDepth(t, env, 0)
}

func TestSMSGateRefusesUndecodable(t *testing.T) {
	mms := string(readSMSGate(t, "mms-downloaded.json"))
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"bad base64", strings.Replace(mms, `"data":"Tm90`, `"data":"*m90`, 1), 400, "not valid base64"},
		{"bad padding", strings.Replace(mms, `Ow\u003d\u003d"`, `Ow\u003d"`, 1), 400, "not valid base64"},
		{"data not a string", strings.Replace(mms, `"data":"Tm90ZXM6IGNhZsOpIMK9ID0gb2sK"`, `"data":42`, 1), 400, "not a base64 string"},
		{"data an object", strings.Replace(mms, `"data":"Tm90ZXM6IGNhZsOpIMK9ID0gb2sK"`, `"data":{"a":1}`, 1), 400, "not a base64 string"},
		{"not JSON", `{"event":"sms:received",`, 400, "not a JSON object"},
		{"an array", `[{"event":"sms:received"}]`, 400, "not a JSON object"},
		{"no event", `{"id":"x","payload":{}}`, 400, "missing event"},
		{"too many fields", `{"event":"sms:received","payload":{"a":[` + strings.Repeat("1,", MaxFields) + `1]}}`, 413, "at most"},
		{"nested too deep", `{"event":"x","payload":` + strings.Repeat(`{"a":`, MaxDepth) + `1` + strings.Repeat(`}`, MaxDepth) + `}`, 413, "nest"},
		// A large body is for files: text past the cap every other
		// webhook has would make an email no server takes.
		{"text past the cap", `{"event":"app:started","payload":{"f1":"` + strings.Repeat("x", 400<<10) + `","f2":"` + strings.Repeat("x", 400<<10) +
			`","f3":"` + strings.Repeat("x", 400<<10) + `","f4":"` + strings.Repeat("x", 400<<10) + `","f5":"` + strings.Repeat("x", 400<<10) +
			`","f6":"` + strings.Repeat("x", 400<<10) + `"}}`, 413, "besides the attachments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, h := newSMSGateEnv(t)
			rec := sendSMSGate(t, h, []byte(tt.body))
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Fatalf("answer %d %s, want %d %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			wantDepth(t, env, 0)
		})
	}
}

func TestSMSGateAttachmentWithoutData(t *testing.T) {
	env, h := newSMSGateEnv(t)
	body := `{"id":"a","webhookId":"w","event":"mms:downloaded","deviceId":"d","payload":{"attachments":[{"partId":33,"contentType":"audio/amr"},` +
		`{"partId":34,"contentType":"image/png","name":"x.png","size":0,"data":""}],"receivedAt":"2024-06-07T11:45:40.000+07:00","messageId":"m","sender":"+1"}}`
	ev := storedEvent(t, env, wantReply(t, sendSMSGate(t, h, []byte(body)), "queued").ID)
	want := []relay.Attachment{{ContentType: "audio/amr"}, {Name: "x.png", ContentType: "image/png"}}
	if got := ev.Canonical().Attachments; !reflect.DeepEqual(got, want) {
		t.Errorf("attachments %+v, want %+v", got, want)
	}
}

func TestParseSMSGateTime(t *testing.T) {
	// What the app's Gson pattern writes for 2024-01-01T12:34:56.789Z
	// (java.text.SimpleDateFormat), from Android 7 on and before.
	winter := at("2024-01-01T12:34:56.789Z")
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2024-01-01T12:34:56.789Z", winter},
		{"2024-01-01T19:34:56.789+07:00", winter},
		{"2024-01-01T07:34:56.789-05:00", winter},
		{"2024-01-01T09:04:56.789-03:30", winter},
		{"2024-01-01T12:34:56.789+0000", winter},
		{"2024-07-01T13:34:56.789+0100", at("2024-07-01T12:34:56.789Z")},
		{"2024-01-01T18:04:56.789+05:30", winter},
		{"2024-01-01T07:34:56.789+-5:00", winter},
		{"2024-01-01T02:34:56.789+-10:00", winter},
		{"2024-01-01T09:04:56.789+-3:-30", winter},
		{"2024-01-01T03:04:56.789+-9:-30", winter},
		{"2024-01-01T12:34:56Z", at("2024-01-01T12:34:56Z")},
		{"", time.Time{}},
		{"Jun 7, 2024 11:41:31 AM", time.Time{}},
		{"2024-01-01T12:34:56.789", time.Time{}},
		{"2024-01-01T12:34:56.789+25:00", time.Time{}},
		{"2024-01-01T12:34:56.789+-5:xx", time.Time{}},
		{"2024-01-01T12:34:56.789+", time.Time{}},
	}
	for _, tt := range tests {
		if got := parseSMSGateTime(tt.in); !got.Equal(tt.want) {
			t.Errorf("parseSMSGateTime(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestSMSGateDecodeMemoryBounded decodes an MMS as large as the source
// takes by default (8 MiB, two pictures inline): the decoder allocates
// the files' bytes once, and copies neither the body nor their base64.
func TestSMSGateDecodeMemoryBounded(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{13}))
	file := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// Sizes that leave one and two padding characters, as Gson escapes them.
	n := (config.DefaultSMSGateBodyBytes - 4096) / 2 / 4 * 3
	files := [][]byte{file(n + 1), file(n - 1)}
	gsonBase64 := func(b []byte) string {
		s := base64.StdEncoding.EncodeToString(b)
		return strings.ReplaceAll(s, "=", `\u003d`)
	}
	body := []byte(`{"id":"Md7Lx2Vq9Kc0Zb4Wt1Ns6","webhookId":"mms-dl-hook","event":"mms:downloaded","deviceId":"ffffffffceb0b1db0000018e937c815b",` +
		`"payload":{"body":"Two pictures","attachments":[` +
		`{"partId":31,"contentType":"image/jpeg","name":"a.jpg","size":` + strconv.Itoa(len(files[0])) + `,"data":"` + gsonBase64(files[0]) + `"},` +
		`{"partId":32,"contentType":"image/jpeg","name":"b.jpg","size":` + strconv.Itoa(len(files[1])) + `,"data":"` + gsonBase64(files[1]) + `"}],` +
		`"receivedAt":"2024-06-07T11:45:40.000+07:00","messageId":"mms-0002@mmsc.example.net","sender":"+19162255887","simNumber":1,"phoneNumber":"+19162255887"}}`)
	if len(body) > config.DefaultSMSGateBodyBytes {
		t.Fatalf("test body of %d bytes is over the default limit", len(body))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, rerr := decodeSMSGate(body)
	runtime.ReadMemStats(&after)
	if rerr != nil {
		t.Fatal(rerr.reason)
	}
	got := d.ev.Content.Attachments
	if len(got) != 2 || !bytes.Equal(got[0].Data, files[0]) || !bytes.Equal(got[1].Data, files[1]) {
		t.Fatal("attachments do not hold the files' bytes")
	}
	decoded := uint64(len(files[0]) + len(files[1]))
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > decoded+256<<10 {
		t.Errorf("decoding a %d-byte body allocated %d bytes for %d bytes of files", len(body), alloc, decoded)
	}
}
