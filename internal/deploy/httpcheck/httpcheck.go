// Package httpcheck is the HTTP health check run from the bot after a deploy:
// GET the configured URL, expect a status and optionally a body substring.
package httpcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// DefaultMaxBody is how much of a response body is searched for ExpectBody.
const DefaultMaxBody = 64 << 10

// Checker makes one attempt per Check; the release runner retries.
type Checker struct {
	// Client sends the request; nil means http.DefaultClient.
	Client *http.Client
	// MaxBody caps how many body bytes are read; 0 means DefaultMaxBody.
	MaxBody int64
}

var _ release.HealthChecker = (*Checker)(nil)

// New returns a Checker using client (nil: http.DefaultClient).
func New(client *http.Client) *Checker { return &Checker{Client: client} }

// Check GETs h.URL within h.Timeout (if set) and returns nil if the status
// is h.ExpectStatus (200 when 0) and the first MaxBody bytes of the body
// contain h.ExpectBody. Errors name the URL without credentials or query,
// which may carry tokens.
func (c *Checker) Check(ctx context.Context, h deploy.Health) error {
	if h.URL == "" {
		return errors.New("no health URL")
	}
	where := safeURL(h.URL)
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return fmt.Errorf("health URL %s is invalid", where)
	}
	req.Header.Set("User-Agent", "shipbot-healthcheck")
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", where, ctx.Err())
		}
		return fmt.Errorf("GET %s: %v", where, err)
	}
	defer resp.Body.Close()

	limit := c.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	want := h.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: status %d, want %d", where, resp.StatusCode, want)
	}
	if h.ExpectBody == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", where, err)
	}
	if !strings.Contains(string(body), h.ExpectBody) {
		return fmt.Errorf("GET %s: body does not contain %q (first %d bytes checked)", where, h.ExpectBody, limit)
	}
	return nil
}

// safeURL is raw without user info, query and fragment.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
