package webhook

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSMSGateDecode feeds the smsgate decoder (what runs once a body's
// signature checks out) bodies near the app's; .ci/run runs it for a
// bounded number of inputs:
//
//	go test -run '^$' -fuzz '^FuzzSMSGateDecode$' -fuzztime 100000x ./relay/webhook
func FuzzSMSGateDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "smsgate", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed bodies (%v)", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, body := range []string{
		`{"event":"mms:downloaded","payload":{"attachments":[{"data":"QQ\u003d\u003d"},{"data":null},{"data":"Q\u0051=="},{"name":"x"}]}}`,
		`{"event":"mms:downloaded","payload":{"attachments":{"0":{"data":"QQ=="}},"attachments.1.data":"x"}}`,
		`{"event":"SMS:Sent","payload":{"messageId":"m","sentAt":"2024-01-01T07:34:56.789+-3:-30"}}`,
		`{"event":"\u0000évènement/☃","payload":[1,{"a":null}]}`,
		`{"event":"sms:received","payload":"text"}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, rerr := decodeSMSGate(body)
		if rerr != nil {
			if rerr.status != http.StatusBadRequest && rerr.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("refused with %d (%s), want 400 or 413", rerr.status, rerr.reason)
			}
			return
		}
		ev := d.ev
		sanitize(ev) // as the receiver does
		if ev.Type == "" || len(ev.Type) > MaxTypeBytes || strings.Trim(ev.Type, "abcdefghijklmnopqrstuvwxyz0123456789:._-") != "" {
			t.Errorf("type %q: empty, too long, or not lower-case letters, digits and :._-", ev.Type)
		}
		if len(ev.Data) > MaxFields {
			t.Errorf("%d fields, over MaxFields", len(ev.Data))
		}
		for k, v := range ev.Data {
			if k == "" || !utf8.ValidString(k+v) || strings.Contains(k+v, "\x00") {
				t.Errorf("field %q=%q: empty name, invalid UTF-8 or NUL", k, v)
			}
			// The repair of invalid UTF-8 may triple a length at most.
			if len(k) > 3*MaxNameBytes || len(v) > 3*MaxFieldBytes {
				t.Errorf("field %.40q: name %d bytes, value %d bytes", k, len(k), len(v))
			}
			if isSMSGateAttachmentData(k) {
				t.Errorf("attachment bytes kept as field %s", k)
			}
		}
		files := 0
		for _, a := range ev.Content.Attachments {
			files += len(a.Data)
		}
		if len(ev.Content.Attachments) > MaxFields || files > len(body) {
			t.Errorf("%d attachments of %d bytes from a %d-byte body", len(ev.Content.Attachments), files, len(body))
		}
	})
}
