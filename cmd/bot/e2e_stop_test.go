package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

// kill -9 mid-deploy, then a restart on the same database: the job is
// interrupted and keeps its lock, no audit row is lost, current is valid.
func TestE2ECrashRecovery(t *testing.T) {
	t.Parallel()
	// switch: killed before current moves; restart: killed after it moved.
	for _, step := range []string{"switch", "restart"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "")
			p, st := e.runScript("/deploy demo staging\n")
			if st.ExitCode() != 0 {
				t.Fatalf("first deploy: exit %v, stderr: %s", st, p.errOut)
			}
			first := e.currentRelease("staging")

			crashed, st := e.runScript("/deploy demo staging\n", crashEnv+"="+step)
			ws, ok := st.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("crash run ended with %v, want SIGKILL\noutput:\n%s", st, crashed.out)
			}
			before := e.auditExport()
			last := before[len(before)-1]
			if last.Kind != audit.KindIntent || last.JobID != 2 || len(outcomesOf(before, last.Seq)) != 0 {
				t.Fatalf("after the crash the last audit row is %+v, want job #2's open intent", last)
			}

			p = e.startBot(nil)
			p.send("/jobs")
			p.send("/deploy demo staging")
			p.waitFor(`✖ Refused\ndemo/staging is locked by alice since [^\n]* \(job #2\)`)
			p.waitAnywhere(`(?m)^  │ #2 +deploy +demo/staging +interrupted `)
			// The card the crashed run posted is closed, and the interruption
			// goes out as a new message (an edit notifies nobody).
			p.waitAnywhere(`── #\d+ \(updated\) ──\n\S+ Deploy demo → staging \(job #2\)\n(?:[^─\n][^\n]*\n)*?\(continued in a new message below\)\n`)
			p.waitAnywhere(`── #\d+ ──\n\S+ Deploy demo → staging \(job #2\)\nshipbot stopped while the job was running\n`)
			// The card says what the job left live and offers only what
			// makes sense for it.
			switch step {
			case "switch":
				// Killed before the switch: first is still live, so there
				// is nothing to roll back; only the lock can be released.
				m := p.waitAnywhere(cardLine(2, `It never switched: `+first+`, the release live before it, is still live\.[^\n]*`) +
					`  state: interrupted — lock still held\n(?:[^─\n][^\n]*\n)*?\[(\d+[a-z])\] Release lock\n`)
				if cur := e.currentRelease("staging"); cur != first {
					t.Fatalf("killed before the switch, current is %s, want %s", cur, first)
				}
				p.send(m[1])
				p.waitAnywhere(`was held by alice.s job #2: deploy job`)
				p.waitAnywhere(cardState(2, "interrupted — lock released by alice"))
				p.send("/job 2")
				p.waitAnywhere(`(?s)` + cardState(2, "interrupted — lock released by alice") + `.*` + cardState(2, "interrupted — lock released by alice"))
				p.send("/deploy demo staging")
				p.waitAnywhere(cardState(3, "succeeded"))
			case "restart":
				// Killed after the switch: Rollback puts first back and
				// takes over job #2's lock, in one job.
				m := p.waitAnywhere(cardLine(2, `It switched away from `+first+`\. Rollback makes `+first+` live again[^\n]*`) +
					`  state: interrupted — lock still held\n(?:[^─\n][^\n]*\n)*?\[\d+[a-z]\] Release lock  \[(\d+[a-z])\] Rollback to ` + first + `\n`)
				p.send(m[1])
				p.waitAnywhere(`Rollback demo → staging ` + cardState(3, "succeeded"))
				p.waitAnywhere(cardState(2, "interrupted — lock released by alice (job #3)"))
				if cur := e.currentRelease("staging"); cur != first {
					t.Fatalf("after the card's Rollback current is %s, want %s, the release live before job #2", cur, first)
				}
				p.send("/job 2")
				p.waitAnywhere(`(?s)` + cardState(2, "interrupted — lock released by alice (job #3)") + `.*` +
					cardState(2, "interrupted — lock released by alice (job #3)"))
			}
			p.closeInput()
			p.mustExit0()
			// One new message for the interruption (closing the old card
			// once); the lock's release edits it rather than posting again.
			if n := strings.Count(p.out.String(), "(continued in a new message below)"); n != 1 {
				t.Fatalf("job #2 was posted anew %d times after the restart, want once", n)
			}
			if strings.Contains(p.out.String(), "(job #4)") {
				t.Fatal("an extra job was created")
			}

			e.mustVerify()
			after := e.auditExport()
			if len(after) <= len(before) {
				t.Fatalf("audit has %d rows after restart, %d before", len(after), len(before))
			}
			for i, ev := range before {
				if after[i].Seq != ev.Seq || after[i].Hash != ev.Hash {
					t.Fatalf("audit row %d changed or lost across the restart", ev.Seq)
				}
			}
			intent := jobIntent(t, after, 2)
			outs := outcomesOf(after, intent.Seq)
			if len(outs) != 1 || !strings.HasPrefix(outs[0].Outcome, "interrupted") {
				t.Fatalf("job #2's intent has outcomes %+v, want exactly one interrupted", outs)
			}

		})
	}
}

// SIGTERM: new work is refused, the running job gets shutdown_timeout, then
// it is cancelled, its release removed, and the bot exits 0.
func TestE2ESigtermDrain(t *testing.T) {
	t.Parallel()
	const shutdown = 3 * time.Second
	e := newEnv(t, shutdown.String())
	p := e.startBot(nil)

	p.send("/deploy demo staging slow")
	release := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardLine(1, `  \[>\] build \(running\)`))

	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The signal is handled asynchronously: probe with a harmless mutating
	// command until the bot answers that it is shutting down.
	for i := 0; ; i++ {
		if i == 500 {
			t.Fatal("the bot never started refusing work after SIGTERM")
		}
		p.send("/cancel 999")
		if reply := p.waitFor(`✖ Refused\n([^\n]*)\n`)[1]; strings.Contains(reply, "shutting down") {
			break
		}
	}
	p.send("/deploy demo production")
	p.waitFor(`✖ Refused\nshipbot is shutting down and takes no new work[^\n]*\n`)

	st := p.wait(shutdown + 10*time.Second)
	took := time.Since(sent)
	if st.ExitCode() != 0 {
		t.Fatalf("exit %v after SIGTERM, stderr: %s", st, p.errOut)
	}
	if took < shutdown-500*time.Millisecond || took > shutdown+5*time.Second {
		t.Errorf("exited %s after SIGTERM; want about the %s shutdown timeout", took, shutdown)
	}
	p.waitFor(cardState(1, "cancelled"))
	if strings.Contains(p.out.String(), "(job #2)") {
		t.Fatal("a job was created while shutting down")
	}
	if _, err := os.Stat(filepath.Join(e.envPath("staging"), "releases", release)); !os.IsNotExist(err) {
		t.Errorf("release %s of the cancelled job is still on disk (stat: %v)", release, err)
	}

	evs := e.auditExport()
	outs := outcomesOf(evs, jobIntent(t, evs, 1).Seq)
	if len(outs) != 1 || !strings.HasPrefix(outs[0].Outcome, "cancelled") {
		t.Fatalf("job #1 outcomes %+v, want one cancelled", outs)
	}
	var drained int
	for _, ev := range evs {
		if ev.Kind == audit.KindDenial && ev.Command == "deploy" && strings.HasPrefix(ev.Outcome, "draining") {
			drained++
		}
	}
	if drained != 1 {
		t.Errorf("%d draining denials for deploy in the audit log, want 1", drained)
	}
	e.mustVerify()
}
