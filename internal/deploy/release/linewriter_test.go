package release_test

import (
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy/release"
)

func TestLineWriter(t *testing.T) {
	t.Parallel()
	var got []string
	w := release.NewLineWriter(10, func(l string) { got = append(got, l) })
	for _, chunk := range []string{
		"plain\r\n",
		"split ", "across\r\n",
		"10%\r50%\r100%\r\n", // a progress bar redrawn in place
		"\x1b[1;32mgreen\x1b[0m\r\n",
		"0123456789abcdef\r\n",
		"日本語日本語\r\n", // cut inside a rune must not split it
		"tail",
	} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	_, _ = w.Write([]byte("after close\n"))
	want := []string{"plain", "split acro …", "100%", "green", "0123456789 …", "日本語 …", "tail"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q\nwant    %q", got, want)
	}
	if tail := w.Tail(); tail != strings.Join(want[2:], "\n") {
		t.Errorf("tail = %q", tail)
	}
}
