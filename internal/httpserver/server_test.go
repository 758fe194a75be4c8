package httpserver_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/httpserver"
)

type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

func serve(t *testing.T, db httpserver.Pinger, routes ...httpserver.Route) string {
	t.Helper()
	s, err := httpserver.Listen("127.0.0.1:0", httpserver.NewRouter(db, slog.New(slog.NewTextHandler(io.Discard, nil)), routes...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + s.Addr()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	up := serve(t, pinger{})
	if code, body := get(t, up+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, up+"/readyz"); code != 200 {
		t.Fatalf("/readyz with a database = %d", code)
	}
	down := serve(t, pinger{err: errors.New("disk gone")})
	if code, body := get(t, down+"/readyz"); code != 503 || strings.Contains(body, "disk gone") {
		t.Fatalf("/readyz without a database = %d %q (details belong in the log)", code, body)
	}
	if code, _ := get(t, down+"/healthz"); code != 200 {
		t.Fatal("/healthz must not depend on the database")
	}
}

func TestRoutesArePOSTOnlyAndBodyIsCapped(t *testing.T) {
	var got int
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		got = len(b)
	})
	base := serve(t, pinger{}, httpserver.Route{Path: "/hooks/x", Handler: h})
	if code, _ := get(t, base+"/hooks/x"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on a webhook = %d", code)
	}
	resp, err := http.Post(base+"/hooks/x", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil || resp.StatusCode != 200 || got != 7 {
		t.Fatalf("small POST: %v %v, read %d", resp, err, got)
	}
	resp.Body.Close()
	resp, err = http.Post(base+"/hooks/x", "application/json", strings.NewReader(strings.Repeat("x", httpserver.MaxBody+1)))
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize POST: %v %v", resp, err)
	}
	resp.Body.Close()
}
