package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Twilio signs each webhook as its helper libraries check it
// (twilio-python's RequestValidator, twilio-go's and twilio-node's):
//
//	X-Twilio-Signature = Base64(HMAC-SHA1(auth token, URL + k1 + v1 + k2 + v2 ...))
//
// URL is the webhook URL as Twilio requested it, query string included;
// the pairs are the form's fields sorted by key, a repeated key's values
// deduplicated and sorted. A JSON body is not in the pairs: Twilio adds
// bodySHA256 (its hex SHA-256) to the URL's query instead. Twilio signs
// the URL sometimes with its port and sometimes without ("signature
// generation on the back end is inconsistent"), so both are tried, as the
// libraries do.

const twilioSignatureHeader = "X-Twilio-Signature"

// verifyTwilio authenticates a Twilio webhook and returns its form fields
// (a body signed by its hash, bodySHA256, is refused). The fields are split
// out to be verified, since the signature covers them rather than the
// bytes; nothing else is decoded before the signature holds.
func verifyTwilio(q *request) (fields url.Values, rerr *reqError) {
	urls, query, err := twilioSignedURLs(q.src.PublicURL.Reveal(), q.r.URL.RawQuery)
	if err != nil {
		return nil, &reqError{status: http.StatusInternalServerError, result: ResultUnavailable,
			reason: "this source's public_url is not an absolute http(s) URL", err: err}
	}
	bodyHash := queryValue(query, "bodySHA256")
	if bodyHash == "" {
		if fields, rerr = twilioForm(q); rerr != nil {
			return nil, rerr
		}
	}
	presented := []byte(strings.TrimSpace(q.r.Header.Get(twilioSignatureHeader)))
	ok := false
	for _, u := range urls { // both, always: no early exit
		payload := twilioPayload(u, fields)
		matched := q.keys.matchMAC(presented, func(key []byte) []byte { return twilioMAC(key, payload) }) >= 0
		ok = ok || matched
	}
	if bodyHash != "" {
		sum := sha256.Sum256(q.body)
		ok = subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(bodyHash)) == 1 && ok
	}
	if !ok {
		return nil, errBadSignature
	}
	if bodyHash != "" {
		// Authentic, but only a JSON body is signed by its hash, and
		// messaging webhooks are forms: it is another Twilio product's,
		// whatever its Content-Type (which the signature does not cover)
		// says.
		return nil, errTwilioJSON
	}
	return fields, nil
}

var errTwilioJSON = &reqError{status: http.StatusUnsupportedMediaType, result: ResultUnsupported,
	reason: "unsupported content type: Twilio's messaging webhooks are application/x-www-form-urlencoded, not signed JSON (bodySHA256)"}

// twilioForm splits a form body into its fields; any other content type
// is refused.
func twilioForm(q *request) (url.Values, *reqError) {
	if mediaType, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type")); mediaType != "application/x-www-form-urlencoded" && mediaType != "" {
		return nil, &reqError{status: http.StatusUnsupportedMediaType, result: ResultUnsupported,
			reason: "unsupported content type: Twilio's messaging webhooks are application/x-www-form-urlencoded"}
	}
	fields, err := parseTwilioForm(q.body)
	if err != nil {
		return nil, decodeError(err)
	}
	return fields, nil
}

// parseTwilioForm splits a form body into its fields as the web
// frameworks that feed Twilio's validators do: every field kept, an empty
// value too, "+" a space, and only "&" between fields (url.ParseQuery
// would refuse a ";" in a value). A body over the limits on a body's shape
// is refused whole.
func parseTwilioForm(body []byte) (url.Values, error) {
	if strings.Count(string(body), "&")+1 > MaxFields {
		return nil, errTooManyFields
	}
	fields := url.Values{}
	for field := range strings.SplitSeq(string(body), "&") {
		if field == "" {
			continue
		}
		k, v, _ := strings.Cut(field, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("%w: a field name does not decode", ErrMalformed)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%w: a value does not decode", ErrMalformed)
		}
		switch {
		case len(key) > MaxNameBytes:
			return nil, errNameTooLarge
		case len(val) > MaxFieldBytes:
			return nil, errFieldTooLarge
		}
		fields[key] = append(fields[key], val)
	}
	return fields, nil
}

// twilioSignedURLs returns the two URLs Twilio may have signed, without
// the port and with it (the scheme's default when publicURL names none),
// and the query string they carry.
//
// They are publicURL, which is what Twilio posts to (behind a proxy
// hookmail sees another host, path or scheme), with the request's query
// string as received when it has one: Twilio signs the URL it requests,
// with the bodySHA256 it adds, byte for byte. Without one (a proxy dropped
// it), publicURL's own query string is kept. Credentials in publicURL
// (https://user:pass@host/...) are left out: Twilio's own middleware
// rebuilds the URL from the request, which never carries them.
func twilioSignedURLs(publicURL, rawQuery string) (urls [2]string, query string, err error) {
	u, err := url.Parse(publicURL)
	if err != nil {
		return urls, "", err
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return urls, "", errors.New("public_url is not an absolute http(s) URL")
	}
	base, _, _ := strings.Cut(publicURL, "#")
	base, query, hasQuery := strings.Cut(base, "?")
	if rawQuery != "" {
		query, hasQuery = rawQuery, true
	}
	scheme, rest, _ := strings.Cut(base, "://")
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		host, port = authority[:i], authority[i+1:]
	}
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	tail := path
	if hasQuery {
		tail += "?" + query
	}
	return [2]string{scheme + "://" + host + tail, scheme + "://" + host + ":" + port + tail}, query, nil
}

// twilioPayload is what Twilio signs: the URL, then each field's key and
// value, sorted by key, a repeated key's values deduplicated and sorted.
func twilioPayload(signedURL string, fields url.Values) []byte {
	b := []byte(signedURL)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		for _, v := range slices.Compact(slices.Sorted(slices.Values(fields[k]))) {
			b = append(append(b, k...), v...)
		}
	}
	return b
}

// twilioMAC is the X-Twilio-Signature of payload under key.
func twilioMAC(key, payload []byte) []byte {
	m := hmac.New(sha1.New, key)
	m.Write(payload)
	return base64.StdEncoding.AppendEncode(nil, m.Sum(nil))
}

// queryValue is the first value of name in a query string, "" when it has
// none; a query that does not decode whole still yields the pairs that do.
func queryValue(query, name string) string {
	vals, _ := url.ParseQuery(query)
	return vals.Get(name)
}
