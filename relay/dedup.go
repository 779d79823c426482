package relay

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
)

// DedupHash is how every queue backend stores an Event's DedupKey: its
// SHA-256. One definition, so a key moved from one backend to another
// (`hookmail queue migrate`) still finds its repeats there. Like the key,
// the hash must never be shown: from it, a guess at a short webhook secret
// can be tested offline. It prints as "<dedup key hash>" in every format.
type DedupHash [sha256.Size]byte

// HashDedupKey is the DedupHash a backend stores for key.
func HashDedupKey(key string) DedupHash { return DedupHash(sha256.Sum256([]byte(key))) }

const maskedDedupHash = "<dedup key hash>"

// String masks the hash.
func (DedupHash) String() string { return maskedDedupHash }

// GoString masks the hash for %#v.
func (DedupHash) GoString() string { return "relay.DedupHash(" + maskedDedupHash + ")" }

// Format masks the hash for every fmt verb, %x included.
func (DedupHash) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", maskedDedupHash)
		return
	}
	fmt.Fprint(f, maskedDedupHash)
}

// LogValue masks the hash in slog output.
func (DedupHash) LogValue() slog.Value { return slog.StringValue(maskedDedupHash) }

// MarshalText masks the hash in JSON and other text encodings.
func (DedupHash) MarshalText() ([]byte, error) { return []byte(maskedDedupHash), nil }
