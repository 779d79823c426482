package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// smsgateKey is the signing key of the e2e tests' SMS Gateway source.
const smsgateKey = "e2e-smsgate-signing-key-4f1c9a7b2d"

// postSMSGate posts body to path as SMS Gateway for Android does: signed
// with X-Signature = hex(HMAC-SHA256(key, body + X-Timestamp)), computed
// here with the standard library, not hookmail's code.
func postSMSGate(t *testing.T, url, body string) (int, string) {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(smsgateKey))
	mac.Write([]byte(body + ts))
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Timestamp", ts)
	req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mmsBody is an mms:downloaded webhook as the app writes it (Gson escapes
// "=" in base64 as \u003d), carrying files inline.
func mmsBody(envelope string, files ...[]byte) string {
	var parts []string
	for i, f := range files {
		data := strings.ReplaceAll(base64.StdEncoding.EncodeToString(f), "=", `\u003d`)
		parts = append(parts, fmt.Sprintf(`{"partId":%d,"contentType":"image/png","name":"photo-%d.png","size":%d,"data":"%s"}`, 30+i, i+1, len(f), data))
	}
	return `{"id":"` + envelope + `","webhookId":"hookmail-mms","event":"mms:downloaded","deviceId":"ffffffffceb0b1db0000018e937c815b","payload":{"body":"Two photos","subject":"Photos","attachments":[` +
		strings.Join(parts, ",") + `],"receivedAt":"2024-06-07T11:45:40.000+07:00","messageId":"mms-0001@mmsc.example.net","sender":"+19162255887","recipient":"+79990001122","simNumber":1}}`
}

// TestE2EMMSAttachments: an MMS with two pictures from SMS Gateway for
// Android arrives in a real Mailpit as one email with two attachments whose
// bytes are the pictures'; the app's second delivery of the same message
// under another envelope id is answered duplicate and sends nothing more.
func TestE2EMMSAttachments(t *testing.T) {
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	env := e2eEnv(t, mp, cert, t.TempDir())
	env = append(env, "HOOKMAIL_CONFIG="+writeConfig(t, `webhook:
  sources:
    - {name: android, path: /webhook/smsgate, format: smsgate}
routes:
  - name: all
    to: ["mms@example.com"]
`), "HOOKMAIL_SOURCE_ANDROID_SECRETS="+smsgateKey)
	hm := startHookmail(t, env)
	pics := [][]byte{make([]byte, 40<<10), make([]byte, 70<<10)}
	for _, p := range pics {
		_, _ = rand.Read(p)
	}
	code, answer := postSMSGate(t, hm.url+"/webhook/smsgate", mmsBody("Md7Lx2Vq9Kc0Zb4Wt1Ns6", pics...))
	if code != http.StatusOK || !strings.Contains(answer, `"queued"`) {
		t.Fatalf("the MMS: %d %s", code, answer)
	}
	code, again := postSMSGate(t, hm.url+"/webhook/smsgate", mmsBody("Zq2Vb7Nc1Xm8Lk3Jh5Gf0", pics...))
	if code != http.StatusOK || !strings.Contains(again, `"duplicate"`) {
		t.Errorf("the same MMS under another envelope id: %d %s, want 200 duplicate", code, again)
	}
	waitUntil(t, "the MMS in Mailpit", 30*time.Second, func() bool { return mp.total() >= 1 })
	time.Sleep(500 * time.Millisecond) // room for a second email to show up
	msgs := mp.messages()
	if len(msgs) != 1 {
		t.Fatalf("Mailpit holds %d emails, want 1", len(msgs))
	}
	if !strings.HasPrefix(msgs[0].Subject, "MMS from +19162255887") {
		t.Errorf("subject %q", msgs[0].Subject)
	}
	var full struct {
		Text        string
		Attachments []struct {
			PartID, FileName, ContentType string
			Size                          int
		}
	}
	getJSON(t, mp.api+"/api/v1/message/"+msgs[0].ID, &full)
	if len(full.Attachments) != 2 {
		t.Fatalf("%d attachments, want 2: %+v", len(full.Attachments), full.Attachments)
	}
	for i, a := range full.Attachments {
		if a.FileName != fmt.Sprintf("photo-%d.png", i+1) || a.ContentType != "image/png" {
			t.Errorf("attachment %d: %s %s", i, a.FileName, a.ContentType)
		}
		resp, err := http.Get(mp.api + "/api/v1/message/" + msgs[0].ID + "/part/" + a.PartID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, pics[i]) {
			t.Errorf("attachment %d: %d bytes that differ from the %d sent", i, len(got), len(pics[i]))
		}
	}
	if !strings.Contains(full.Text, "Two photos") {
		t.Errorf("text part:\n%s", full.Text)
	}
	if strings.Contains(hm.logs.String(), smsgateKey) {
		t.Error("the signing key reached hookmail's logs")
	}
}
