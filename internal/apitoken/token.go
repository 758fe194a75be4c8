// Package apitoken turns a bearer token into the identity "api:NAME" it
// stands for. It is the one place tokens are checked, shared by every door
// that takes them (the HTTP API, the MCP endpoint): the configured tokens
// are kept only as SHA-256 digests and compared in constant time, so
// neither the comparison's timing nor a memory dump of the set gives a
// token away, and nothing here ever logs one.
package apitoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sort"
	"strings"

	"github.com/shipbot/shipbot/internal/audit"
)

// MinLen is the shortest token accepted: 32 random bytes in base64url, what
// New prints. Shorter tokens are refused by the config check.
const MinLen = 43

// Prefix starts every identity a token stands for.
const Prefix = "api:"

// Set is the configured tokens, by name.
type Set struct {
	names   []string
	digests [][sha256.Size]byte
}

// NewSet keeps the digests of tokens (name -> token).
func NewSet(tokens map[string]audit.Secret) *Set {
	s := &Set{}
	names := make([]string, 0, len(tokens))
	for n := range tokens {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if tokens[n].IsZero() {
			continue
		}
		s.names = append(s.names, n)
		s.digests = append(s.digests, sha256.Sum256([]byte(tokens[n].Reveal())))
	}
	return s
}

// Len is how many tokens the set holds.
func (s *Set) Len() int { return len(s.names) }

// Identify returns the name of the token, if it is one of the set. Every
// configured digest is compared (no early exit), each in constant time.
func (s *Set) Identify(token string) (string, bool) {
	if s == nil || token == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.digests {
		if subtle.ConstantTimeCompare(d[:], s.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return s.names[found], true
}

// FromRequest reads "Authorization: Bearer TOKEN" (RFC 6750 §2.1). It
// returns "" when the header is missing or of another scheme.
func FromRequest(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// Authenticate returns the identity ("api:NAME") and name of r's token.
func (s *Set) Authenticate(r *http.Request) (identity, name string, ok bool) {
	name, ok = s.Identify(FromRequest(r))
	if !ok {
		return "", "", false
	}
	return Prefix + name, name, true
}

// New returns a fresh random token: 32 bytes from crypto/rand, base64url.
func New() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
