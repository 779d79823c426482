package webhook

import (
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/hookmail/hookmail/relay"
)

// twilioSignPy is Twilio's signature computed by twilio-python's own
// algorithm (RequestValidator.compute_signature), independently of
// hookmail's: the URL, then every field's key and value sorted by key, a
// repeated key's values deduplicated and sorted; HMAC-SHA1 under the auth
// token, Base64. The form is split by Python's parse_qsl, as a framework
// would before handing it to the validator.
const twilioSignPy = `
import base64, hashlib, hmac, sys, urllib.parse
token, url, body = sys.argv[1], sys.argv[2], sys.stdin.buffer.read().decode("ascii")
params = {}
for k, v in urllib.parse.parse_qsl(body, keep_blank_values=True):
    params.setdefault(k, set()).add(v)
s = url + "".join(k + v for k in sorted(params) for v in sorted(params[k]))
print(base64.b64encode(hmac.new(token.encode(), s.encode(), hashlib.sha1).digest()).decode())
`

// twilioSign signs body as Twilio does for url.
func twilioSign(t testing.TB, token, url, body string) string {
	t.Helper()
	cmd := exec.Command("python3", "-c", twilioSignPy, token, url)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// twilio-python's published vectors (tests/unit/test_request_validator.py)
// and twilio-go's (client/request_validator_test.go), through the whole
// receiver: auth token "12345", the URL below, the voice parameters.
func TestTwilioPublishedVectors(t *testing.T) {
	const uri = "https://mycompany.com/myapp.php?foo=1&bar=2"
	voice := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675309"}, "Digits": {"1234"}, "From": {"+14158675309"}, "To": {"+18005551212"}}.Encode()
	goVoice := url.Values{"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"}, "Caller": {"+14158675309"},
		"From": {"+14158675309"}, "ReasonConferenceEnded": {"test"}, "Reason": {"Participant"}}.Encode()
	const jsonBody = `{"property": "value", "boolean": true}`
	const bodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	tests := []struct {
		name, publicURL, query, contentType, body, signature string
		want                                                 int
	}{
		{"python: the signature", uri, "foo=1&bar=2", formType, voice, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", 200},
		{"python: signed with :443", uri, "foo=1&bar=2", formType, voice, "kvajT1Ptam85bY51eRf/AJRuM3w=", 200},
		{"python: public_url with a port, signed without", "https://mycompany.com:1234/myapp.php?foo=1&bar=2", "foo=1&bar=2", formType, voice, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", 200},
		{"python: http with port 1234", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", "foo=1&bar=2", formType, voice, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", 200},
		{"python: http signed with :80", "http://mycompany.com/myapp.php?foo=1&bar=2", "foo=1&bar=2", formType, voice, "0ZXoZLH/DfblKGATFgpif+LLRf4=", 200},
		{"python: repeated keys", uri, "foo=1&bar=2", formType, "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234", "IK+Dwps556ElfBT0I3Rgjkr1wJU=", 200},
		{"python: bodySHA256, authentic but JSON", uri, "foo=1&bar=2&bodySHA256=" + bodyHash, "application/json", jsonBody, "a9nBmqA0ju/hNViExpshrM61xv4=", 415},
		{"python: bodySHA256, authentic, its content type taken off", uri, "foo=1&bar=2&bodySHA256=" + bodyHash, "", jsonBody, "a9nBmqA0ju/hNViExpshrM61xv4=", 415},
		{"python: bodySHA256, body tampered", uri, "foo=1&bar=2&bodySHA256=" + bodyHash, "application/json", strings.Replace(jsonBody, "true", "false", 1), "a9nBmqA0ju/hNViExpshrM61xv4=", 401},
		{"go: seven parameters", uri, "foo=1&bar=2", formType, goVoice, "vOEb5UThFn24KEfnOFLQY2AE5FY=", 200},
		{"go: sorted wrongly", uri, "foo=1&bar=2", formType, goVoice, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", 401},
		{"go: a form body", uri, "foo=1&bar=2", formType, "property=value&boolean=true", "NBdBDr/T/lgjI+tlgpXjKZQZs/k=", 200},
		{"python: the signature, a parameter tampered", uri, "foo=1&bar=2", formType, strings.Replace(voice, "Digits=1234", "Digits=1235", 1), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", 401},
		{"python: the signature, another query", uri, "foo=1&bar=3", formType, voice, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, h := twilioEnv(t, tt.publicURL, "12345")
			rec := postTwilio(t, h, "http://127.0.0.1:8080/hooks/twilio?"+tt.query, tt.contentType, tt.body, tt.signature)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.want, rec.Body)
			}
			evs := twilioStored(t, env)
			if tt.want != 200 {
				if len(evs) != 0 {
					t.Fatalf("refused, yet %d events stored", len(evs))
				}
				return
			}
			wantTwiML(t, rec, "queued")
			// Voice parameters name no message: kept whole, with every field.
			if len(evs) != 1 || evs[0].Type != typeTwilio || evs[0].Format != relay.FormatTwilio {
				t.Fatalf("events = %+v", evs)
			}
		})
	}
}

// Twilio signs the URL it requests, query string included; behind a proxy
// that drops the query string, public_url's own stands in for it.
func TestTwilioQueryString(t *testing.T) {
	const public = "https://hooks.example.com/sms/twilio?team=ops&x=a%20b"
	body := string(readTestdata(t, "twilio-delivered.form"))
	sig := twilioSign(t, twilioToken, public, body)
	tests := []struct {
		name, target, signature string
		want                    int
	}{
		{"query as received", "http://10.0.0.7:8080/hooks/twilio?team=ops&x=a%20b", sig, 200},
		{"query dropped by the proxy", "http://10.0.0.7:8080/hooks/twilio", sig, 200},
		{"signed without the query", "http://10.0.0.7:8080/hooks/twilio?team=ops&x=a%20b", twilioSign(t, twilioToken, "https://hooks.example.com/sms/twilio", body), 401},
		{"query re-encoded on the way", "http://10.0.0.7:8080/hooks/twilio?team=ops&x=a+b", sig, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h := twilioEnv(t, public, twilioToken)
			if rec := postTwilio(t, h, tt.target, formType, body, tt.signature); rec.Code != tt.want {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.want, rec.Body)
			}
		})
	}
}

// Twilio's secondary auth token, during a rotation: either lets a webhook in.
func TestTwilioTokenRotation(t *testing.T) {
	const next = "9f86d081884c7d659a2feaa0c55ad015"
	env, h := twilioEnv(t, twilioPublic, twilioToken, next)
	sms := string(readTestdata(t, "twilio-sms.form"))
	mms := string(readTestdata(t, "twilio-mms.form"))
	wantTwiML(t, postTwilio(t, h, twilioSeenPath, formType, sms, twilioSign(t, twilioToken, twilioPublic, sms)), "queued")
	wantTwiML(t, postTwilio(t, h, twilioSeenPath, formType, mms, twilioSign(t, next, twilioPublic, mms)), "queued")
	if n := len(twilioStored(t, env)); n != 2 {
		t.Errorf("%d events stored, want 2", n)
	}
}

func TestTwilioSignedURLs(t *testing.T) {
	tests := []struct {
		public, query string
		want          [2]string
	}{
		{"https://h.example/p", "", [2]string{"https://h.example/p", "https://h.example:443/p"}},
		{"http://h.example/p?a=1", "", [2]string{"http://h.example/p?a=1", "http://h.example:80/p?a=1"}},
		{"https://h.example:8443/p?a=1", "b=2", [2]string{"https://h.example/p?b=2", "https://h.example:8443/p?b=2"}},
		{"https://user:pa:ss@h.example/p#frag", "", [2]string{"https://h.example/p", "https://h.example:443/p"}},
		{"https://[2001:db8::1]:8443/p", "", [2]string{"https://[2001:db8::1]/p", "https://[2001:db8::1]:8443/p"}},
		{"https://h.example", "", [2]string{"https://h.example", "https://h.example:443"}},
	}
	for _, tt := range tests {
		got, _, err := twilioSignedURLs(tt.public, tt.query)
		if err != nil || got != tt.want {
			t.Errorf("twilioSignedURLs(%q, %q) = %q, %v; want %q", tt.public, tt.query, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "/hooks/twilio", "ftp://h.example/p", "https://", "%zz"} {
		if _, _, err := twilioSignedURLs(bad, ""); err == nil {
			t.Errorf("twilioSignedURLs(%q) took it", bad)
		}
	}
}
