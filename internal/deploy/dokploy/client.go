// Package dokploy is the deploy driver for apps run by Dokploy: compose
// services and applications driven through Dokploy's HTTP API
// (https://HOST/api, header x-api-key). Deploys are queued by Dokploy and
// answer with no id, so the driver tags each with a unique title and polls
// the deployment list until that deployment ends.
package dokploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is Dokploy's API root, e.g. https://dokploy.example.com/api.
	BaseURL string
	APIKey  audit.Secret
	// RootCAs verifies the server (nil: the system pool). Verification is
	// never switched off.
	RootCAs *x509.CertPool
	// Timeout bounds one request (not a backup, which has its own); default 30s.
	Timeout time.Duration
	// MaxBody caps a response body; default 4 MiB.
	MaxBody int64
}

// Client calls Dokploy's API.
type Client struct {
	base    *url.URL
	key     audit.Secret
	http    *http.Client
	timeout time.Duration
	maxBody int64
}

// NewClient checks cfg and returns a Client. Plain http is refused except on
// loopback, where no one can read the key on the way.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("dokploy base_url %q is not a URL like https://dokploy.example.com/api", cfg.BaseURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("dokploy base_url %q: plain http would send the API key unencrypted; use https", cfg.BaseURL)
		}
	default:
		return nil, fmt.Errorf("dokploy base_url %q: scheme must be https", cfg.BaseURL)
	}
	if u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("dokploy base_url must not carry credentials or a query")
	}
	if cfg.APIKey.IsZero() {
		return nil, errors.New("dokploy api_key is empty")
	}
	c := &Client{base: u, key: cfg.APIKey, timeout: cfg.Timeout, maxBody: cfg.MaxBody}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	if c.maxBody <= 0 {
		c.maxBody = 4 << 20
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	c.http = &http.Client{Transport: tr,
		// A redirect could carry the key to another host: never follow one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// APIError is an error answer from Dokploy: trpc-openapi's {message, code,
// issues?} (Dokploy/trpc-openapi src/adapters/node-http/core.ts:211-234), or
// the bare {"message":"Unauthorized"} of a refused key.
type APIError struct {
	Procedure string
	Status    int
	Code      string
	Message   string
	Issues    []string // "path: message"
}

// minVersion is the first Dokploy release that has a procedure shipbot may
// call, where that is newer than v0.22 (from `git tag --contains` of the
// commit adding it in Dokploy/dokploy).
var minVersion = map[string]string{
	"deployment.queueList":       "v0.28.3",
	"deployment.readLogs":        "v0.29.6",
	"application.readLogs":       "v0.29.0",
	"compose.readLogs":           "v0.29.0",
	"backup.manualBackupLibsql":  "v0.29.0",
	"backup.manualBackupCompose": "v0.22.0",
}

// BadKey reports a key Dokploy did not accept at all: wrong, expired,
// revoked or rate-limited. Its 401 carries no code, unlike the 401 a valid
// key gets for a service its user may not touch
// (apps/dokploy/pages/api/[...trpc].ts:8-13 vs services/permission.ts:255-258).
func (e *APIError) BadKey() bool { return e.Status == http.StatusUnauthorized && e.Code == "" }

// NoProcedure reports that this Dokploy has no such procedure (too old, or
// the wrong method): trpc-openapi answers 404 "Not found" for both, never 405.
func (e *APIError) NoProcedure() bool {
	return e.Status == http.StatusNotFound && e.Message == "Not found"
}

func (e *APIError) Error() string {
	switch {
	case e.BadKey():
		return fmt.Sprintf("Dokploy refused the API key (401 on %s): it is wrong, expired, revoked or over its rate limit; check the env's dokploy.api_key", e.Procedure)
	case e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("Dokploy accepted the API key but its user may not call %s: %s (grant that Dokploy user access to the service, or use another key)", e.Procedure, orDash(e.Message))
	case e.Status == http.StatusForbidden:
		return fmt.Sprintf("Dokploy: the API key's user may not call %s (403)", e.Procedure)
	case e.NoProcedure():
		if v := minVersion[e.Procedure]; v != "" {
			return fmt.Sprintf("this Dokploy has no %s (needs %s or newer)", e.Procedure, v)
		}
		return fmt.Sprintf("this Dokploy has no %s (check dokploy.base_url, which should end in /api, and Dokploy's version)", e.Procedure)
	case e.Status >= 300 && e.Status < 400:
		return fmt.Sprintf("Dokploy %s answered a redirect (%d); check dokploy.base_url (it should end in /api)", e.Procedure, e.Status)
	}
	msg := fmt.Sprintf("Dokploy %s failed", e.Procedure)
	if e.Code != "" {
		msg += ": " + e.Code
	} else {
		msg += fmt.Sprintf(": HTTP %d", e.Status)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if len(e.Issues) > 0 {
		msg += " (" + strings.Join(e.Issues, "; ") + ")"
	}
	return msg
}

// Get calls a query procedure: GET /api/<proc>?params.
func (c *Client) Get(ctx context.Context, proc string, params url.Values, out any) error {
	return c.do(ctx, http.MethodGet, proc, params, nil, out, c.timeout)
}

// Post calls a mutation: POST /api/<proc> with a JSON body.
func (c *Client) Post(ctx context.Context, proc string, body, out any) error {
	return c.do(ctx, http.MethodPost, proc, nil, body, out, c.timeout)
}

// PostLong is Post with its own timeout, for procedures Dokploy runs to the
// end before answering (manual backups).
func (c *Client) PostLong(ctx context.Context, proc string, body, out any, timeout time.Duration) error {
	return c.do(ctx, http.MethodPost, proc, nil, body, out, timeout)
}

func (c *Client) do(ctx context.Context, method, proc string, params url.Values, body, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + proc
	if params != nil {
		u.RawQuery = params.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("x-api-key", c.key.Reveal())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error repeats the URL; the cause is enough and holds no key.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("dokploy %s: %w", proc, ctx.Err())
		}
		return &deploy.TargetError{Err: fmt.Errorf("dokploy %s: %v", proc, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return fmt.Errorf("dokploy %s: reading the answer: %v", proc, err)
	}
	if int64(len(data)) > c.maxBody {
		return fmt.Errorf("dokploy %s: answer larger than %d bytes", proc, c.maxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Procedure: proc, Status: resp.StatusCode}
		var body struct {
			Message string `json:"message"`
			Code    string `json:"code"`
			Issues  []struct {
				Message string `json:"message"`
				Path    []any  `json:"path"`
			} `json:"issues"`
		}
		if json.Unmarshal(data, &body) == nil {
			e.Message, e.Code = body.Message, body.Code
			for _, is := range body.Issues {
				// zod's path says which input was wrong: keep it.
				var path []string
				for _, p := range is.Path {
					path = append(path, fmt.Sprint(p))
				}
				if len(path) > 0 {
					e.Issues = append(e.Issues, strings.Join(path, ".")+": "+is.Message)
				} else {
					e.Issues = append(e.Issues, is.Message)
				}
			}
		}
		return &deploy.TargetError{Err: e}
	}
	// Deploys answer with an empty body (or true); nothing to decode.
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("dokploy %s: unexpected answer: %v", proc, err)
	}
	return nil
}
