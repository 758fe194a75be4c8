package httpcheck_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/httpcheck"
)

func server(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

func TestCheckStatusAndBody(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(`{"status":"ok"}`))
		case "/created":
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	c := httpcheck.New(nil)
	ctx := context.Background()
	for _, tc := range []struct {
		h       deploy.Health
		wantErr string
	}{
		{h: deploy.Health{URL: url + "/ok"}},
		{h: deploy.Health{URL: url + "/ok", ExpectBody: `"ok"`}},
		{h: deploy.Health{URL: url + "/created", ExpectStatus: 201}},
		{h: deploy.Health{URL: url + "/down"}, wantErr: "status 503, want 200"},
		{h: deploy.Health{URL: url + "/created"}, wantErr: "status 201, want 200"},
		{h: deploy.Health{URL: url + "/ok", ExpectBody: "healthy"}, wantErr: "does not contain"},
	} {
		err := c.Check(ctx, tc.h)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.h.URL, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want %q", tc.h.URL, err, tc.wantErr)
		}
	}
}

func TestCheckReadsAtMostMaxBody(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 1000) + "ok"))
	})
	c := &httpcheck.Checker{MaxBody: 100}
	if err := c.Check(context.Background(), deploy.Health{URL: url, ExpectBody: "ok"}); err == nil {
		t.Fatal("found a substring beyond MaxBody")
	}
	c.MaxBody = 2000
	if err := c.Check(context.Background(), deploy.Health{URL: url, ExpectBody: "ok"}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckTimesOut(t *testing.T) {
	release := make(chan struct{})
	url := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	started := time.Now()
	err := httpcheck.New(nil).Check(context.Background(), deploy.Health{URL: url, Timeout: 50 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(started); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestErrorsHideCredentialsAndQuery(t *testing.T) {
	url := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	withSecrets := strings.Replace(url, "http://", "http://user:hunter22@", 1) + "/health?token=s3cret"
	err := httpcheck.New(nil).Check(context.Background(), deploy.Health{URL: withSecrets})
	if err == nil || strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
	// a connection error too: *url.Error would repeat the full URL
	err = httpcheck.New(nil).Check(context.Background(), deploy.Health{URL: "http://user:hunter22@127.0.0.1:1/h?token=s3cret"})
	if err == nil || strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}
