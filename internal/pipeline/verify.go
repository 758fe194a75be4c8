package pipeline

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/shipbot/shipbot/internal/audit"
)

// ErrUnverified is a delivery whose signature or token does not check out.
var ErrUnverified = errors.New("webhook not verified")

func unverified(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUnverified, fmt.Sprintf(format, a...))
}

// Header names the sources use.
const (
	GitLabTokenHeader    = "X-Gitlab-Token"
	GitHubSigHeader      = "X-Hub-Signature-256"
	GenericSigHeader     = "X-Shipbot-Signature"
	DefaultDokployHeader = "X-Shipbot-Token"
)

// VerifyGitLab checks X-Gitlab-Token (GitLab sends the configured secret
// token as is) in constant time.
func VerifyGitLab(h http.Header, secret audit.Secret) error {
	return tokenEqual(h.Get(GitLabTokenHeader), secret, GitLabTokenHeader)
}

// VerifyDokploy checks the header the admin configured on Dokploy's
// "custom" notification provider, which sends no signature of its own.
func VerifyDokploy(h http.Header, name string, secret audit.Secret) error {
	if name == "" {
		name = DefaultDokployHeader
	}
	return tokenEqual(h.Get(name), secret, name)
}

func tokenEqual(got string, secret audit.Secret, header string) error {
	if secret.IsZero() {
		return unverified("no secret configured")
	}
	if got == "" {
		return unverified("%s missing", header)
	}
	// Hash both so the comparison time does not depend on the lengths either.
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(secret.Reveal()))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return unverified("%s wrong", header)
	}
	return nil
}

// VerifyGitHub checks X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of
// the raw body with the webhook secret.
func VerifyGitHub(h http.Header, body []byte, secret audit.Secret) error {
	return verifyHMAC(h.Get(GitHubSigHeader), body, secret, GitHubSigHeader)
}

// VerifyGeneric checks X-Shipbot-Signature, GitHub's scheme: "sha256=" +
// hex HMAC-SHA256 of the raw body.
func VerifyGeneric(h http.Header, body []byte, secret audit.Secret) error {
	return verifyHMAC(h.Get(GenericSigHeader), body, secret, GenericSigHeader)
}

func verifyHMAC(sig string, body []byte, secret audit.Secret, header string) error {
	if secret.IsZero() {
		return unverified("no secret configured")
	}
	hexSum, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return unverified("%s missing or not sha256=…", header)
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return unverified("%s is not hex", header)
	}
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return unverified("%s does not match the body", header)
	}
	return nil
}

// Sign returns the X-Shipbot-Signature (and X-Hub-Signature-256) value for body.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
