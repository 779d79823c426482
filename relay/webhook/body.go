package webhook

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"time"
)

// readChunk is how much of a body readBody asks for at a time; a body grows
// its buffer only as its bytes arrive, so a slow client costs little.
const readChunk = 16 << 10

// readBody reads the whole body of r, at most maxBody bytes, within timeout
// of now. A zender form body's secret (secretOK, nil for other formats) is checked as soon as its field has arrived,
// so a client with a wrong secret is refused without sending the rest. A
// refused body is not read to its end, so its connection is closed after
// the answer rather than kept alive. charge, when set, is asked for each
// size the body grows to, before the buffer grows (see largeCharge); a
// body it refuses is answered 503.
func readBody(w http.ResponseWriter, r *http.Request, maxBody int64, timeout time.Duration, secretOK func(string) bool, charge func(held int) bool) ([]byte, *reqError) {
	// Not every ResponseWriter supports deadlines (httptest's does not);
	// the server's own ReadTimeout still bounds the read then.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	var scan *formSecretScanner
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); secretOK != nil && mediaType == "application/x-www-form-urlencoded" {
		scan = &formSecretScanner{}
	}
	body := http.MaxBytesReader(w, r.Body, maxBody)
	var buf []byte
	for {
		// Room for what is still to come when the length is known (and a
		// byte more, for the read that finds the end), else a chunk.
		want := readChunk
		if r.ContentLength >= 0 {
			want = int(max(min(r.ContentLength-int64(len(buf))+1, readChunk), 1))
		}
		// Asked before the buffer grows: what the body will hold once this
		// read is in (the buffer's capacity runs up to a quarter ahead of
		// that while it grows; the announced size, taken up front before,
		// was the same bound).
		if charge != nil && !charge(len(buf)+want) {
			w.Header().Set("Connection", "close")
			return nil, errLargeBodies
		}
		buf = growTo(buf, want)
		n, err := body.Read(buf[len(buf) : len(buf)+want]) // no more than was charged
		buf = buf[:len(buf)+n]
		// Only a body still arriving is cut short: a whole one is decoded,
		// so its refusal can name its type.
		if scan != nil && err == nil && int64(len(buf)) != r.ContentLength {
			if secret, ok := scan.next(buf); ok {
				if !secretOK(secret) {
					w.Header().Set("Connection", "close")
					return nil, errWrongSecret
				}
				scan = nil
			}
		}
		var tooLarge *http.MaxBytesError
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return buf, nil
		case errors.As(err, &tooLarge):
			return nil, &reqError{status: http.StatusRequestEntityTooLarge, result: ResultTooLarge, reason: "body is larger than webhook.max_body_bytes (or its source's max_body_bytes) allows"}
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			return nil, &reqError{status: http.StatusRequestTimeout, result: ResultInvalid, reason: "the body did not arrive within webhook.body_timeout"}
		default:
			w.Header().Set("Connection", "close")
			return nil, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "the body could not be read"}
		}
	}
}

// growTo makes room for at least n more bytes in b.
func growTo(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(b, make([]byte, n)...)[:len(b)]
}

// formSecretScanner finds the secret field of a form body as it arrives:
// the first field named "secret", complete once the "&" after it (or the
// end of the body) has arrived. The decoder takes the same first secret
// field (PHP's http_build_query writes each key once).
type formSecretScanner struct {
	off int // where the next field starts
}

// next looks at the fields of body completed since the last call, and
// returns the secret once its field is complete (the "&" after it has
// arrived). A field that does not decode is left to the decoder.
func (s *formSecretScanner) next(body []byte) (string, bool) {
	for {
		field, _, complete := bytes.Cut(body[s.off:], []byte("&"))
		if !complete {
			return "", false
		}
		s.off += len(field) + 1
		key, value, _ := bytes.Cut(field, []byte("="))
		if k, err := url.QueryUnescape(string(key)); err == nil && k == "secret" {
			v, err := url.QueryUnescape(string(value))
			return v, err == nil
		}
	}
}
