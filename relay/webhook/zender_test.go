package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookmail/hookmail/relay"
)

const testSecret = "f50f6f32ff605baf44483fcecceaba83fc3f9362"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const formType = "application/x-www-form-urlencoded"

func TestDecodeWireBodies(t *testing.T) {
	tests := []struct {
		file     string
		wantType string
		want     map[string]string
	}{
		{"sms.form", "sms", map[string]string{
			"id": "2", "rid": "10593", "sim": "1", "device": "00000000-0000-0000-d57d-f30cb6a89289",
			"phone": "+639760713666", "message": "Hello World!", "timestamp": "1645684231",
		}},
		{"whatsapp.form", "whatsapp", map[string]string{
			"id": "2", "wid": "+639760713666", "phone": "+639760666713",
			"message": "Tom & Jerry's 😀\ncafé", "attachment": "0", "timestamp": "1645684231",
		}},
		{"ussd.form", "ussd", map[string]string{
			"id": "98", "sim": "1", "device": "00000000-0000-0000-d57d-f30cb6a89289", "code": "*143#",
			"response": "Sorry! You are not allowed to use this service.", "timestamp": "1645684231",
		}},
		{"notifications.form", "notification", map[string]string{
			"id": "77", "device": "00000000-0000-0000-d57d-f30cb6a89289", "package": "com.facebook.katana",
			"title": "Facebook", "content": "Someone commented on your post!", "timestamp": "1645684231",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := DecodePayload(formType, bytes.NewReader(readTestdata(t, tt.file)), DecodeOptions{UnescapeHTML: true})
			if err != nil {
				t.Fatal(err)
			}
			if p.Secret != testSecret {
				t.Errorf("secret not decoded")
			}
			if got := relay.NormalizeType(p.Type); got != tt.wantType {
				t.Errorf("type = %q, want %q", got, tt.wantType)
			}
			if !maps.Equal(p.Data, tt.want) {
				t.Errorf("data = %#v\nwant %#v", p.Data, tt.want)
			}
		})
	}
}

func TestDecodeVariants(t *testing.T) {
	multipartBody := func(fields map[string]string) (string, []byte) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for k, v := range fields {
			_ = w.WriteField(k, v)
		}
		_ = w.Close()
		return w.FormDataContentType(), b.Bytes()
	}
	mpType, mpBody := multipartBody(map[string]string{"secret": "s", "type": "sms", "data[phone]": "+1", "data[message]": "hi"})
	tests := []struct {
		name        string
		contentType string
		body        string
		unescape    bool
		wantType    string
		want        map[string]string
		wantErr     error
	}{
		{name: "unescaped brackets", contentType: formType, body: "secret=s&type=sms&data[phone]=%2B1&data[message]=a+b",
			wantType: "sms", want: map[string]string{"phone": "+1", "message": "a b"}},
		{name: "charset parameter", contentType: formType + "; charset=UTF-8", body: "secret=s&type=sms&data[id]=1",
			wantType: "sms", want: map[string]string{"id": "1"}},
		{name: "nested keys", contentType: formType, body: "secret=s&type=x&data[a][b]=1",
			wantType: "x", want: map[string]string{"a.b": "1"}},
		{name: "repeated key keeps the last, as PHP does", contentType: formType, body: "secret=s&type=sms&data[id]=1&data[id]=2",
			wantType: "sms", want: map[string]string{"id": "2"}},
		{name: "entities unescaped once", contentType: formType, body: "secret=s&type=sms&data[message]=Tom+%26amp%3Bamp%3B+%26lt%3Bb%26gt%3B", unescape: true,
			wantType: "sms", want: map[string]string{"message": "Tom &amp; <b>"}},
		{name: "entities kept when unescape is off", contentType: formType, body: "secret=s&type=sms&data[message]=%26amp%3B",
			wantType: "sms", want: map[string]string{"message": "&amp;"}},
		{name: "invalid UTF-8 repaired", contentType: formType, body: "secret=s&type=sms&data[message]=caf%E9+%00ok",
			wantType: "sms", want: map[string]string{"message": "caf\uFFFD ok"}},
		{name: "JSON with numbers, bools and null", contentType: "application/json",
			body:     `{"secret":"s","type":"sms","data":{"id":2,"sim":"1","read":true,"spam":false,"rid":null,"message":"hi"}}`,
			wantType: "sms", want: map[string]string{"id": "2", "sim": "1", "read": "1", "spam": "0", "message": "hi"}},
		{name: "JSON nested", contentType: "application/json; charset=utf-8",
			body:     `{"secret":"s","type":"x","data":{"payload":{"sender":"+1","list":["a","b"]}}}`,
			wantType: "x", want: map[string]string{"payload.sender": "+1", "payload.list.0": "a", "payload.list.1": "b"}},
		{name: "multipart", contentType: mpType, body: string(mpBody),
			wantType: "sms", want: map[string]string{"phone": "+1", "message": "hi"}},
		{name: "no content type", contentType: "", body: "secret=s", wantErr: ErrUnsupportedMediaType},
		{name: "text/plain", contentType: "text/plain", body: "secret=s", wantErr: ErrUnsupportedMediaType},
		{name: "broken JSON", contentType: "application/json", body: `{"secret":`, wantErr: ErrMalformed},
		{name: "JSON secret not a string", contentType: "application/json", body: `{"secret":{"a":1}}`, wantErr: ErrMalformed},
		{name: "two JSON values", contentType: "application/json", body: `{} {}`, wantErr: ErrMalformed},
		{name: "bad percent escape", contentType: formType, body: "secret=%zz", wantErr: ErrMalformed},
		{name: "multipart without boundary", contentType: "multipart/form-data", body: "x", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodePayload(tt.contentType, strings.NewReader(tt.body), DecodeOptions{UnescapeHTML: tt.unescape})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := relay.NormalizeType(p.Type); got != tt.wantType {
				t.Errorf("type = %q, want %q", got, tt.wantType)
			}
			if !maps.Equal(p.Data, tt.want) {
				t.Errorf("data = %#v\nwant %#v", p.Data, tt.want)
			}
		})
	}
}

// TestUnescapeRunsOnceEvenWhenKeysAreRepaired guards against unescaping a
// value twice when a repaired key is re-inserted into the map being ranged.
func TestUnescapeRunsOnceEvenWhenKeysAreRepaired(t *testing.T) {
	var body strings.Builder
	body.WriteString("secret=s&type=sms")
	for i := range 500 {
		fmt.Fprintf(&body, "&data[k%%FF%d]=%%26amp%%3Blt%%3B", i)
	}
	p, err := DecodePayload(formType, strings.NewReader(body.String()), DecodeOptions{UnescapeHTML: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Data) != 500 {
		t.Fatalf("%d fields, want 500", len(p.Data))
	}
	for k, v := range p.Data {
		if v != "&lt;" {
			t.Fatalf("field %q = %q, want &lt; (unescaped exactly once)", k, v)
		}
	}
}
