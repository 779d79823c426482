package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// A fuzz target; .ci/run runs it for a bounded number of inputs:
//
//	go test -run '^$' -fuzz '^FuzzDecodePayload$' -fuzztime 150000x ./relay/webhook
//
// A crasher the fuzzer finds lands in testdata/fuzz/FuzzDecodePayload/ and
// is kept there as a regression seed that every plain go test runs.

// Content types FuzzDecodePayload picks from.
const (
	fuzzForm = iota
	fuzzMultipart
	fuzzJSON
	fuzzKinds
)

const fuzzBoundary = "hookmail-fuzz-boundary"

var fuzzContentTypes = [fuzzKinds]string{
	fuzzForm:      formType,
	fuzzMultipart: "multipart/form-data; boundary=" + fuzzBoundary,
	fuzzJSON:      "application/json",
}

// wireFormFiles are the gateway's four replayable bodies (the README's "What
// the gateway sends"), the unknown-type one of the e2e test, and the hostile
// one of the golden tests.
var wireFormFiles = []string{"sms.form", "whatsapp.form", "ussd.form", "notifications.form", "telegram.form", "hostile.form"}

// asMultipart and asJSON re-encode a form body in the other wire formats.
func asMultipart(t testing.TB, form string) []byte {
	vals, err := url.ParseQuery(form)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if err := w.SetBoundary(fuzzBoundary); err != nil {
		t.Fatal(err)
	}
	for k, vs := range vals {
		for _, v := range vs {
			if err := w.WriteField(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func asJSON(t testing.TB, form string) []byte {
	p, err := DecodePayload(formType, strings.NewReader(form), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"secret":%q,"type":%q,"data":{`, p.Secret, p.Type)
	i := 0
	for k, v := range p.Data {
		if i > 0 {
			b.WriteByte(',')
		}
		i++
		if k == "id" || k == "timestamp" {
			fmt.Fprintf(&b, "%q:%s", k, v) // numbers, as some senders send them
		} else {
			fmt.Fprintf(&b, "%q:%q", k, v)
		}
	}
	b.WriteString("}}")
	return []byte(b.String())
}

func FuzzDecodePayload(f *testing.F) {
	for _, file := range wireFormFiles {
		form := string(readTestdata(f, file))
		f.Add(uint8(fuzzForm), []byte(form), true)
		f.Add(uint8(fuzzMultipart), asMultipart(f, form), true)
		f.Add(uint8(fuzzJSON), asJSON(f, form), false)
	}
	for _, body := range []string{
		"secret=s&type=sms&data[phone]=%2B1&data[message]=a+b&data[a][b][c]=1",
		"secret=s&type=sms&data[id]=1&data[id]=2&data[k%FF]=%00%ED%A0%80",
		"secret=s;type=sms&data%5B%5D=&=&&data[a]b]=1",
	} {
		f.Add(uint8(fuzzForm), []byte(body), true)
	}
	for _, body := range []string{
		`{"secret":"s","type":"sms","data":{"id":2,"read":true,"spam":false,"rid":null,"n":{"a":[1,"2",{"b":null}]}}}`,
		`{"id":"x","webhookId":"w","event":"sms:received","deviceId":"d","payload":{"messageId":"m","phoneNumber":"+1","simNumber":1,"message":"hi","receivedAt":"2024-01-01T00:00:00Z"}}`,
		`{"SECRET":"s","Type":"x","data":{"\u0000k":"\u0000v\ud800"}} `,
		`{"secret":{"a":1},"type":[1]}`,
		`{} {}`,
	} {
		f.Add(uint8(fuzzJSON), []byte(body), true)
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte, unescape bool) {
		ct := fuzzContentTypes[int(kind)%fuzzKinds]
		p, err := DecodePayload(ct, bytes.NewReader(body), DecodeOptions{UnescapeHTML: unescape})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !isLimit(err) {
				t.Fatalf("%s: error %v is neither malformed nor a limit", ct, err)
			}
			return
		}
		if len(p.Data) > MaxFields {
			t.Errorf("%d fields, over MaxFields", len(p.Data))
		}
		if len(p.Type) > MaxTypeBytes || !utf8.ValidString(p.Type) || strings.Contains(p.Type, "\x00") {
			t.Errorf("type %q: over MaxTypeBytes, invalid UTF-8 or NUL", p.Type)
		}
		for k, v := range p.Data {
			if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) || strings.Contains(k+v, "\x00") {
				t.Errorf("field %q=%q: empty name, invalid UTF-8 or NUL", k, v)
			}
			// The repair of invalid UTF-8 may triple a length at most.
			if len(k) > 3*MaxNameBytes || len(v) > 3*MaxFieldBytes {
				t.Errorf("field %.40q: name %d bytes, value %d bytes", k, len(k), len(v))
			}
		}
	})
}
