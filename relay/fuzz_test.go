package relay_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/webhook"
)

// A fuzz target; .ci/run runs it for a bounded number of inputs:
//
//	go test -run '^$' -fuzz '^FuzzRender$' -fuzztime 20000x ./relay
//
// (FuzzDecodePayload, which fuzzes the decoder, is in relay/webhook.) A
// crasher the fuzzer finds lands in testdata/fuzz/FuzzRender/ and is kept
// there as a regression seed that every plain go test runs.

// wireFormFiles are the gateway's four replayable bodies (the README's "What
// the gateway sends"), the unknown-type one of the e2e test, and the hostile
// one of the golden tests.
var wireFormFiles = []string{"sms.form", "whatsapp.form", "ussd.form", "notifications.form", "telegram.form", "hostile.form"}

func FuzzRender(f *testing.F) {
	for _, file := range wireFormFiles {
		p, err := webhook.DecodePayload(formType, bytes.NewReader(readTestdata(f, file)), webhook.DecodeOptions{UnescapeHTML: true})
		if err != nil {
			f.Fatal(err)
		}
		d := p.Data
		f.Add(p.Type, d["phone"]+d["code"]+d["package"], d["message"]+d["response"]+d["content"], d["title"]+d["wid"], "device", d["device"], d["attachment"], d["timestamp"])
	}
	f.Add("sms\r\nBcc: x@evil.example", "+1\r\nBcc: y@evil.example", "=?UTF-8?q?=0D=0ABcc:_z@evil.example?=", "<script>alert(1)</script>",
		"k\r\nX-Injected: 1", "{{.}} {{template \"x\"}}", "javascript:alert(1)", "9223372036854775807")
	f.Add("x\x00\xff", "\x1b[31m\u0085\u2028", strings.Repeat("=?😀", 60), "\xed\xa0\x80", "", "\x00", "0", "-1")
	f.Add("sms", "+1\xff", "caf\xe9 \xed\xa0\x80", "", "\xff", "\xff", "", "")
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		f.Fatal(err)
	}
	route := &config.Route{Name: "fuzz", To: []string{"to@example.com"}, Cc: []string{"cc@example.com"}}
	const from = "hookmail <hookmail@relay.example>"
	received := time.Unix(1645684300, 0)
	f.Fuzz(func(t *testing.T, typ, phone, message, title, key, value, attachment, timestamp string) {
		// Raw strings, not repaired by the decoder: Render must hold on
		// anything an override template or a future queue might give it.
		ev := &relay.Event{ID: "01900000-0000-7000-8000-000000000001", Type: relay.NormalizeType(typ), Received: received, Data: map[string]string{
			"phone": phone, "code": phone, "package": phone,
			"message": message, "response": message, "content": message,
			"title": title, "wid": title,
			"attachment": attachment, "timestamp": timestamp,
		}}
		if key != "" {
			ev.Data[key] = value
		}
		msg, err := r.Render(ev, route, from)
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		relay.CheckEmail(t, msg, relay.EmailWant{
			From: "hookmail@relay.example", To: route.To, Cc: route.Cc, EventID: ev.ID,
			MessageID: relay.MessageID(ev.ID, route.Name, from), Date: ev.Time(),
		})
	})
}
