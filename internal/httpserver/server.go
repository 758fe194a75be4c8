// Package httpserver is shipbot's one HTTP listener: platform webhooks
// (Telegram, Slack, CI/CD hooks), the API and MCP doors, /metrics, /healthz and /readyz, on a chi
// router. Handlers are mounted by the wiring; this package knows none of them.
package httpserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// MaxBody caps every request body; webhook payloads are far smaller.
const MaxBody = 1 << 20

// Pinger reports whether the database answers, for /readyz.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Route is a handler mounted at a path for POST requests.
type Route struct {
	Path    string
	Handler http.Handler
	Method  string // default POST (webhooks); GET for /metrics
}

// NewRouter returns the router: GET /healthz (the process is up: body "ok"),
// GET /readyz (the database answers), and each route as POST.
func NewRouter(db Pinger, log *slog.Logger, routes ...Route) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			req.Body = http.MaxBytesReader(w, req.Body, MaxBody)
			next.ServeHTTP(w, req)
		})
	})
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	r.Get("/readyz", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := db.Ping(ctx); err != nil {
			log.Warn("readyz: database", "err", err)
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready"))
	})
	for _, rt := range routes {
		method := rt.Method
		if method == "" {
			method = http.MethodPost
		}
		r.Method(method, rt.Path, rt.Handler)
	}
	return r
}

// Server serves a router until its context ends.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr now, so a port in use fails start-up, not later.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve blocks until ctx ends, then shuts down, letting requests in flight finish for up to 10 s.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(shutdown)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
