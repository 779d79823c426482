package webhook

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/hookmail/hookmail/config"
)

// Keys are one source's secrets in force: whatever its format
// authenticates with. Every comparison is in constant time and against
// every key, with no early exit, so neither a key's content, its length,
// which key matched, nor how many there are shows through timing.
type Keys struct {
	raw    [][]byte
	hashed [][sha256.Size]byte
}

// NewKeys takes the configured secrets of a source.
func NewKeys(secrets []config.Secret) Keys {
	k := Keys{}
	for _, s := range secrets {
		k.raw = append(k.raw, []byte(s.Reveal()))
		k.hashed = append(k.hashed, sha256.Sum256([]byte(s.Reveal())))
	}
	return k
}

// Len is how many keys there are.
func (k Keys) Len() int { return len(k.raw) }

// match returns the index of the key presented equals, or -1: for formats
// that carry the secret itself (zender). Hashing first makes every
// comparison the same length.
func (k Keys) match(presented string) int {
	h := sha256.Sum256([]byte(presented))
	idx := -1
	for i := range k.hashed {
		idx = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(h[:], k.hashed[i][:]), i, idx)
	}
	if presented == "" {
		return -1
	}
	return idx
}

// matchMAC returns the index of the key whose MAC over the request (mac
// computes it) equals presented, or -1: for formats that sign.
func (k Keys) matchMAC(presented []byte, mac func(key []byte) []byte) int {
	idx := -1
	for i, key := range k.raw {
		idx = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(mac(key), presented), i, idx)
	}
	if len(presented) == 0 {
		return -1
	}
	return idx
}

// hash is key i's SHA-256, which names the sender in zender's dedup keys.
func (k Keys) hash(i int) [sha256.Size]byte { return k.hashed[i] }
