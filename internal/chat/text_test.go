package chat

import (
	"errors"
	"testing"
)

func TestClean(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text\nline two\ttab", "plain text\nline two\ttab"},
		{"\x1b[1;31mred\x1b[0m", "red"},
		{"title\x1b]0;evil\x07end", "titleend"},
		{"tail\x1b[31", "tail"},
		{"cr\r\nlf", "cr\nlf"},
		{"nul\x00del\x7fbs\x08", "nuldelbs"},
		{"c1\u009b31m", "c131m"},
		{"bidi\u202eolleh\u202c \u2067x\u2069\u200f", "bidiolleh x"},
		{"bad\xffbyte", "bad\ufffdbyte"},
		{"ünïcödé ✔", "ünïcödé ✔"},
	} {
		if got := Clean(c.in); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := OneLine(" a\n\tb  c\u202e "); got != "a b c" {
		t.Errorf("OneLine = %q", got)
	}
}

func TestClip(t *testing.T) {
	if got := ClipRunes("ünïcödé", 3); got != "ünï…" {
		t.Errorf("ClipRunes = %q", got)
	}
	// Byte clips never split a rune and count the "…".
	if got := ClipHeadBytes("aé€b", 6); got != "aé…" || len(got) > 6 {
		t.Errorf("ClipHeadBytes = %q", got)
	}
	if got := ClipTailBytes("a€éb", 6); got != "…éb" || len(got) > 6 {
		t.Errorf("ClipTailBytes = %q", got)
	}
	if StepMark("done") != "✅" || StepMark("odd") != "❔" || StyleMark("info") != "" {
		t.Error("marks")
	}
}

func TestRedactor(t *testing.T) {
	base := errors.New("GET https://api/botSECRET1/getMe: 401 xapp-SECRET2")
	r := NewRedactor("SECRET1", "", "xapp-SECRET2")
	err := r.Err(base)
	if err.Error() != "GET https://api/bot[redacted]/getMe: 401 [redacted]" || !errors.Is(err, base) {
		t.Fatalf("%v", err)
	}
	if plain := errors.New("no secret"); r.Err(plain) != plain || r.Err(nil) != nil {
		t.Fatal("an error without a secret changed")
	}
}
