package relay

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestDedupHashNeverShows: a stored dedup key's hash prints masked in
// every format a log line, an error or a command's output may use, so no
// guess at a webhook secret can be tested against it.
func TestDedupHashNeverShows(t *testing.T) {
	h := HashDedupKey("a dedup key")
	raw := hex.EncodeToString(h[:])
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "hash", h, "record", struct{ Hash DedupHash }{h})
	js, err := json.Marshal(struct{ Hash DedupHash }{h})
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", h), "%s": fmt.Sprintf("%s", h), "%x": fmt.Sprintf("%x", h), "%X": fmt.Sprintf("%X", h),
		"%q": fmt.Sprintf("%q", h), "%#v": fmt.Sprintf("%#v", h), "%+v in a struct": fmt.Sprintf("%+v", struct{ H DedupHash }{h}),
		"slog": logged.String(), "json": string(js),
	} {
		if strings.Contains(strings.ToLower(out), raw[:16]) || !strings.Contains(out, "dedup key hash") {
			t.Errorf("%s shows %q; want it masked", name, out)
		}
	}
	if HashDedupKey("a dedup key") != h || HashDedupKey("another") == h {
		t.Error("HashDedupKey is not a function of the key alone")
	}
}
