package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// decodeJSONObject reads a body that is one JSON object into its fields,
// flattened as DecodePayload flattens "data": nested names joined with
// ".", array items numbered, booleans "1"/"0", nulls dropped. It walks the
// body token by token under the same limits (MaxFields, MaxDepth,
// MaxFieldBytes, MaxNameBytes), so a body shaped to cost more than its
// size is refused before anything is built for it. It is for formats
// whose whole body is their own JSON object (textbee, httpsms).
func decodeJSONObject(body []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := &jsonWalker{dec: dec}
	out := map[string]string{}
	err := w.delim('{')
	if err == nil {
		err = w.members("", 1, out)
	}
	if err == nil {
		_, err = dec.Token()
		switch {
		case errors.Is(err, io.EOF):
			return out, nil
		case err == nil:
			err = errors.New("more than one JSON value")
		}
	}
	if isLimit(err) {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
}

// eventName is what an event name a sender puts in its body must look
// like before it becomes part of an event type: one short word of
// letters, digits, _, . and -.
var eventName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// parseEventTime reads an RFC 3339 time as JSON senders write it (Go's
// and JavaScript's toJSON alike); the zero time when it does not parse.
func parseEventTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
