package apitoken

import (
	"net/http/httptest"
	"testing"

	"github.com/shipbot/shipbot/internal/audit"
)

func TestIdentify(t *testing.T) {
	a, _ := New()
	b, _ := New()
	if len(a) != MinLen || a == b {
		t.Fatalf("New gave %q and %q", a, b)
	}
	s := NewSet(map[string]audit.Secret{"gitlab-ci": audit.NewSecret(a), "release-bot": audit.NewSecret(b), "empty": {}})
	if s.Len() != 2 {
		t.Fatalf("an empty token must not be usable: %d tokens", s.Len())
	}
	if n, ok := s.Identify(a); !ok || n != "gitlab-ci" {
		t.Fatalf("a: %q %v", n, ok)
	}
	if n, ok := s.Identify(b); !ok || n != "release-bot" {
		t.Fatalf("b: %q %v", n, ok)
	}
	for _, bad := range []string{"", a[:len(a)-1], a + "x", "gitlab-ci"} {
		if n, ok := s.Identify(bad); ok {
			t.Fatalf("%q identified as %q", bad, n)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	if _, _, ok := s.Authenticate(r); ok {
		t.Fatal("no header authenticated")
	}
	r.Header.Set("Authorization", "Basic "+a)
	if _, _, ok := s.Authenticate(r); ok {
		t.Fatal("Basic scheme authenticated")
	}
	r.Header.Set("Authorization", "bearer "+a)
	if id, n, ok := s.Authenticate(r); !ok || id != "api:gitlab-ci" || n != "gitlab-ci" {
		t.Fatalf("bearer: %q %q %v", id, n, ok)
	}
	var nilSet *Set
	if _, ok := nilSet.Identify(a); ok {
		t.Fatal("nil set identified a token")
	}
}
