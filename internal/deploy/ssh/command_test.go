package ssh

import (
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Quoting is a property of the POSIX shell, so many random cases are checked
// against the local /bin/sh quickly; the SSH tests check the remote path.
func TestQuoteRoundTripsThroughPOSIXShell(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		words := randomWords(r)
		var script strings.Builder
		script.WriteString(`printf '%s\0'`)
		for _, w := range words {
			script.WriteString(" " + Quote(w))
		}
		out, err := exec.Command("/bin/sh", "-c", script.String()).Output()
		if err != nil {
			t.Fatalf("sh -c %q: %v", script.String(), err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if strings.Join(got, "\x00") != strings.Join(words, "\x00") {
			t.Fatalf("sent %q, shell saw %q", words, got)
		}
	}
}

func TestRemoteCommand(t *testing.T) {
	t.Parallel()
	cmd, err := remoteCommand("/srv/app/releases/r1", []string{"pip", "install", "-r", "it's.txt"}, 90*time.Second+time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := batchEnv + `cd -- '/srv/app/releases/r1' && exec timeout -k 5s 92s 'pip' 'install' '-r' 'it'\''s.txt' </dev/null`
	if cmd != want {
		t.Errorf("command =\n %s\nwant\n %s", cmd, want)
	}
	cmd, err = remoteCommand("", []string{"true"}, 0)
	if err != nil || cmd != batchEnv+`exec timeout -k 5s 0s 'true' </dev/null` {
		t.Errorf("command without dir or limit = %q, %v", cmd, err)
	}
	for _, bad := range [][]string{nil, {""}, {"-rf"}, {"echo", "a\x00"}} {
		if _, err := remoteCommand("", bad, 0); err == nil {
			t.Errorf("argv %q accepted", bad)
		}
	}
	if _, err := remoteCommand("/a\x00b", []string{"true"}, 0); err == nil {
		t.Error("dir with NUL accepted")
	}
}
