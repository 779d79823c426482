package webhook

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/hookmail/hookmail/config"
)

// Secrets compares a presented secret against every configured one in
// constant time. Hashing first makes every comparison the same length, so
// neither a secret's content nor its length leaks through timing. match
// has no early exit: it compares against every configured secret and
// selects the match in constant time, so which secret matched (or how many
// are configured past the first) does not show either. The work before it, decoding the body,
// does not depend on the secret at all. What a right secret then costs on
// top (the fsync before 200) tells the sender nothing the 200 does not.
type Secrets [][sha256.Size]byte

// NewSecrets hashes the configured secrets for match.
func NewSecrets(secrets []config.Secret) Secrets {
	set := make(Secrets, 0, len(secrets))
	for _, s := range secrets {
		set = append(set, sha256.Sum256([]byte(s.Reveal())))
	}
	return set
}

// match returns the index of the configured secret presented equals, or -1.
// It compares against every secret, whichever matches, so the time taken
// says nothing about which one or how close.
func (set Secrets) match(presented string) int {
	h := sha256.Sum256([]byte(presented))
	idx := -1
	for i := range set {
		idx = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(h[:], set[i][:]), i, idx)
	}
	if presented == "" {
		return -1
	}
	return idx
}
