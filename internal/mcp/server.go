// Package mcp is the Model Context Protocol endpoint: a door for AI
// assistants beside the chat adapters and the HTTP API. An assistant
// authenticates with a bearer token of api.tokens (see apitoken) and each
// tool call becomes the chat command it stands for, sent as the token's
// identity "api:NAME" through the same dispatcher, so the parser, policy,
// locks, approvals, output caps, redaction and audit rows are the chat's
// own. The door is recorded as the chat "mcp:NAME" of jobs and audit rows.
//
// Transport: the official Go SDK's Streamable HTTP handler, stateless (every
// POST stands alone, so a config reload or a restart strands no session),
// answering tool calls as Server-Sent Events so a waiting deploy can send
// progress notifications.
package mcp

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipbot/shipbot/internal/apitoken"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// Platform is the door: "mcp:NAME" is the chat of an assistant's jobs and
// audit rows. The identity stays "api:NAME", the token's.
const Platform = "mcp"

// Store is what the tools read directly, after the dispatcher has checked
// the caller may see it.
type Store interface {
	Job(ctx context.Context, id int64) (*deploy.Job, error)
}

// Options configure a Server.
type Options struct {
	// Tokens returns the current token set (a reload may replace it).
	Tokens  func() *apitoken.Set
	Handler commands.Handler
	// Catalog returns the configured apps; the tools' enums follow it.
	Catalog func() commands.Catalog
	Store   Store
	// Origins returns the allowed browser origins (mcp.allowed_origins).
	Origins func() []string
	// ApprovalChat returns mcp.approval_chat, where the assistants' job
	// cards are posted through Forward; ok false when none is set.
	ApprovalChat func() (notify.Channel, bool)
	Forward      notify.Sender
	Log          *slog.Logger
	Version      string
	// MaxWait bounds a deploy with wait: true; default 10 minutes.
	MaxWait time.Duration
}

// Server is the MCP endpoint.
type Server struct {
	o Options

	mu      sync.Mutex
	watch   *deploy.JobWatch
	key     string      // the catalog the cached server was built for
	current *sdk.Server // tools for that catalog
}

var (
	_ deploy.Observer = (*Server)(nil)
	_ notify.Sender   = (*Server)(nil)
)

// New returns a Server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 10 * time.Minute
	}
	return &Server{o: o, watch: deploy.NewJobWatch()}
}

// SetHandler wires the dispatcher in (it is built after the engine, whose
// observer the Server is). Call it before serving.
func (s *Server) SetHandler(h commands.Handler) { s.o.Handler = h }

// Handler is the endpoint, for the one router, on every method. The checks
// run outermost first: Origin (403), then the token (401), then the SDK.
func (s *Server) Handler() http.Handler {
	h := sdk.NewStreamableHTTPHandler(s.server, &sdk.StreamableHTTPOptions{
		Stateless: true,
		Logger:    s.sdkLog(),
		// The SDK's own guard refuses a request that reached a loopback
		// address under another Host name: that is every request through
		// a reverse proxy on the same machine (Host: shipbot.example.com,
		// sent to 127.0.0.1:8080), shipbot's usual setup. Rebinding is
		// answered here by the Origin check, and no page a browser is
		// rebound to can present a token.
		DisableLocalhostProtection: true,
		// Tool calls are small JSON; 1 MiB is far beyond any of them.
		MaxRequestBodyBytes: 1 << 20,
	})
	// The server's write timeout is for ordinary requests; an authenticated
	// tool call that waits for its deploy streams up to MaxWait.
	long := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.o.MaxWait + time.Minute))
		h.ServeHTTP(w, r)
	})
	authed := auth.RequireBearerToken(s.verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(long)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			s.o.Log.Warn("mcp: request from a foreign origin refused", "remote", r.RemoteAddr)
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		if apitoken.FromRequest(r) == "" {
			s.unauthorized(w, r)
			return
		}
		authed.ServeHTTP(&challenge{ResponseWriter: w}, r)
	})
}

// sdkLog is the log for the SDK: its warnings and errors. Stateless, it
// would log a session start and end at INFO for every request.
func (s *Server) sdkLog() *slog.Logger {
	return slog.New(warnOnly{s.o.Log.Handler()})
}

type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(a)} }
func (w warnOnly) WithGroup(n string) slog.Handler      { return warnOnly{w.Handler.WithGroup(n)} }

// challenge adds the WWW-Authenticate header RFC 6750 §3 asks of a 401.
type challenge struct{ http.ResponseWriter }

func (c *challenge) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", `Bearer realm="shipbot"`)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *challenge) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	// Which of "missing" and "wrong" is not said, nor logged with the value.
	s.o.Log.Warn("mcp: unauthenticated request", "remote", r.RemoteAddr, "had_token", apitoken.FromRequest(r) != "")
	w.Header().Set("WWW-Authenticate", `Bearer realm="shipbot"`)
	http.Error(w, "a valid token is required: Authorization: Bearer TOKEN", http.StatusUnauthorized)
}

// verify is the SDK's token check, done by apitoken (the one place tokens
// are compared). The token's name is the session's user, so the SDK would
// refuse a session id carried over to another token.
func (s *Server) verify(_ context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
	var set *apitoken.Set
	if s.o.Tokens != nil {
		set = s.o.Tokens()
	}
	name, ok := set.Identify(token)
	if !ok {
		s.o.Log.Warn("mcp: unauthenticated request", "remote", r.RemoteAddr, "had_token", true)
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{UserID: name}, nil
}

// originAllowed applies the transport's rule: "Servers MUST validate the
// Origin header on all incoming connections to prevent DNS rebinding
// attacks. If the Origin header is present and invalid, servers MUST
// respond with HTTP 403 Forbidden." (MCP specification 2025-11-25, Basic >
// Transports > Streamable HTTP > Security Warning,
// https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#security-warning).
// Desktop and CLI assistants send no Origin; a browser always does, and
// only the configured origins pass. Every Origin header is checked, so a
// good one cannot cover a second, bad one.
func (s *Server) originAllowed(r *http.Request) bool {
	vals := r.Header.Values("Origin")
	if len(vals) == 0 {
		return true
	}
	var allowed []string
	if s.o.Origins != nil {
		allowed = s.o.Origins()
	}
	for _, v := range vals {
		if !slices.ContainsFunc(allowed, func(a string) bool { return sameOrigin(a, v) }) {
			return false
		}
	}
	return true
}

// sameOrigin compares scheme and host (RFC 6454 §5), case-insensitively.
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(strings.TrimSuffix(a, "/"))
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || ub.Host == "" || (ub.Path != "" && ub.Path != "/") {
		return false
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host)
}

// server returns the SDK server whose tools match the current catalog: the
// enums of app and env follow a config reload.
func (s *Server) server(*http.Request) *sdk.Server {
	cat := s.o.Catalog()
	key := catalogKey(cat)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil || s.key != key {
		s.current, s.key = s.build(cat), key
	}
	return s.current
}

func catalogKey(cat commands.Catalog) string {
	var b strings.Builder
	for _, app := range slices.Sorted(maps.Keys(cat)) {
		b.WriteString(app)
		for _, env := range slices.Sorted(maps.Keys(cat[app])) {
			b.WriteByte('/')
			b.WriteString(env)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// JobChanged implements deploy.Observer: it wakes the calls waiting on j.
func (s *Server) JobChanged(j deploy.Job) {
	s.watch.JobChanged(j)
}

// Send implements notify.Sender for the "mcp" platform: an assistant's job
// card goes to mcp.approval_chat when one is set (there a person sees it
// and presses Approve; later edits go straight to that chat, as the ref
// names it), and is dropped otherwise: the assistant reads the job through
// the job tool, and the routes with source "shipbot" get the approval card.
func (s *Server) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	if s.o.ApprovalChat != nil && s.o.Forward != nil {
		if to, ok := s.o.ApprovalChat(); ok {
			return s.o.Forward.Send(ctx, to, m)
		}
	}
	return notify.Ref{Channel: ch, ID: "-"}, nil
}

// Edit implements notify.Sender (refs of dropped cards).
func (s *Server) Edit(context.Context, notify.Ref, notify.Message) error { return nil }
