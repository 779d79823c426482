package smtp

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"testing"
)

// TestDotStufferMatchesTextproto: the DATA content dotStuffer writes is
// textproto's DotWriter's, byte for byte, for messages cut into writes
// anywhere: leading dots doubled, bare LFs given their CR, and the final
// dot line. (Only "\r\r\n" differs: textproto writes "\r\r\r\n".)
func TestDotStufferMatchesTextproto(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{".", "..", "a", "hello", "\r\n", "\n", "\r\n.", "\n.", " ", "=2E", "\r"}
	cases := []string{"", ".", "a", "a\r\n", ".\r\n", "a\n.b\n", "\r\n.\r\n", "x\r", "line\r\n.\r\n..\r\n"}
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(30) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if s := b.String(); !strings.Contains(s, "\r\r") {
			cases = append(cases, s)
		}
	}
	for _, msg := range cases {
		var want bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want))
		dw := tw.DotWriter()
		dw.Write([]byte(msg))
		dw.Close()

		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		d := &dotStuffer{w: bw}
		for rest := []byte(msg); len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			if w, err := d.Write(rest[:n]); err != nil || w != n {
				t.Fatalf("Write of %d bytes = %d, %v", n, w, err)
			}
			rest = rest[n:]
		}
		if err := d.close(); err != nil {
			t.Fatal(err)
		}
		if msg == "" {
			// textproto ends an empty message with an empty line; an
			// email is never empty.
			want.Reset()
			want.WriteString(".\r\n")
		}
		if got.String() != want.String() {
			t.Fatalf("message %q:\n got %q\nwant %q", msg, got.String(), want.String())
		}
	}
}
