package release

import (
	"path"
	"strconv"
	"strings"
	"time"
)

// The scripts of a job. Each is one session on a host:
//
//	prepare   prepare (read current, list releases, make the release dir),
//	          fetch (receive and verify the artifact, clone or copy),
//	          link shared, build
//	migrate   migrate, on the first host once every host prepared
//	go live   switch, restart, health command, prune
//	undo      switch back (or away) and restart, after a failure
//	remove    remove the release this job made, after a failure
//
// A rollback is check then go live without prune.

func (j *job) newScript(t *target) *script {
	limit := j.r.Recipe.StepTimeout
	// The job's own deadline bounds the remote backstop too, so a step
	// whose bot vanished behind a silent network still ends.
	if dl, ok := j.ctx.Deadline(); ok && j.ctx.Err() == nil {
		if left := time.Until(dl); limit <= 0 || left < limit {
			limit = max(left, time.Second)
		}
	}
	return newScript(j.nonce, t.remote, limit)
}

// recoveryScript starts a script that runs after the job's context ended,
// bounded like recoveryContext.
func (j *job) recoveryScript(t *target) *script {
	limit := j.r.Recipe.StepTimeout
	if limit <= 0 || limit > cleanupTimeout {
		limit = cleanupTimeout
	}
	return newScript(j.nonce, t.remote, limit)
}

// readState reports current's target and the releases on the host.
func (s *script) readState(t *target) {
	s.raw("cur=$(readlink -- " + ShellQuote(t.currentLink()) + " 2>/dev/null); m cur \"$cur\"")
	s.raw("for d in " + ShellQuote(t.releasesDir()) + "/*; do [ -d \"$d\" ] && m rel \"${d##*/}\"; done")
}

func (j *job) prepareScript(t *target) *script {
	rc := j.r.Recipe
	s := j.newScript(t)
	dir := t.releaseDir(j.release)
	if t.remote && j.artifact == "" {
		// Nothing comes on the session's input: its end means the bot
		// cancelled or went away.
		s.raw("w")
	}

	s.begin(StepPrepare)
	s.readState(t)
	s.builtin("mkdir", "-p", "--", t.releasesDir(), t.sharedDir())
	// Plain mkdir fails if the release dir exists: a build never lands in a
	// directory some other job left, and cleanup never removes it. "made"
	// follows it before any stop is looked at, so the bot always learns
	// that this job made the directory.
	k := s.register([]string{"mkdir", "--", dir})
	s.raw("c " + strconv.Itoa(k) + " && { if x mkdir -- " + ShellQuote(dir) + "; then m made; else m fail exists; fi; }")
	s.end(StepPrepare)

	switch {
	case j.artifact != "":
		s.begin(StepFetch)
		s.receiveArtifact(t, dir, j)
		s.end(StepFetch)
	case rc.Fetch.CopyFrom != "":
		s.begin(StepFetch)
		s.command([]string{"cp", "-a", "--", strings.TrimRight(rc.Fetch.CopyFrom, "/") + "/.", dir})
		s.end(StepFetch)
	case rc.Fetch.GitRepo != "":
		s.begin(StepFetch)
		s.gitFetch(dir, rc.Fetch.GitRepo, j.ref)
		s.end(StepFetch)
	}
	if t.remote && j.artifact != "" {
		// The artifact is in; from here the session's input carries
		// nothing more. (A cancel during the transfer cuts it short, and
		// the checksum fails.)
		s.raw("w")
	}
	if len(rc.Shared) > 0 {
		s.begin(StepLinkShared)
		for _, e := range rc.Shared {
			rel, isDir, _ := sharedEntry(e) // checked before the job started
			src, dst := path.Join(t.sharedDir(), rel), path.Join(dir, rel)
			srcParent := path.Dir(src)
			if isDir {
				srcParent = src
			}
			s.builtin("mkdir", "-p", "--", srcParent, path.Dir(dst))
			// What the fetch put there is replaced by the shared copy.
			s.builtin("rm", "-rf", "--", dst)
			s.builtin("ln", "-sfn", "--", src, dst)
		}
		s.end(StepLinkShared)
	}
	if len(rc.Build) > 0 {
		s.begin(StepBuild)
		s.cd(dir)
		for _, argv := range expandAll(rc.Build, j.r.vars(t, j.release, j.ref)) {
			s.command(argv)
		}
		s.end(StepBuild)
	}
	s.finish()
	return s
}

// receiveArtifact takes exactly the artifact's size from the session's
// input (remote) or reads the file (local), and checks its SHA-256 on the
// host before unpacking it: a truncated or altered transfer is never unpacked.
func (s *script) receiveArtifact(t *target, dir string, j *job) {
	archive := dir + "/" + artifactName
	src := "<&3"
	if t.remote {
		s.artifact = j.artifact
	} else {
		src = "<" + ShellQuote(j.artifact)
	}
	k := s.register([]string{"head", "-c", strconv.FormatInt(j.artifactSize, 10)})
	s.raw("c " + strconv.Itoa(k) + " && { (umask 077 && head -c " + strconv.FormatInt(j.artifactSize, 10) + " " + src + " >" + ShellQuote(archive) + "); rc=$?; }")
	k = s.register([]string{"sha256sum", archive})
	s.raw("c " + strconv.Itoa(k) + " && { sum=$(sha256sum <" + ShellQuote(archive) + "); rc=$?; sum=${sum%% *}; " +
		"[ \"$rc\" != 0 ] || [ \"$sum\" = " + ShellQuote(j.artifactSum) + " ] || { m fail checksum \"$sum\"; rc=1; }; }")
	s.command([]string{"tar", "-xzf", archive, "-C", dir, "--no-same-owner"})
	s.builtin("rm", "-f", "--", archive)
}

// gitFetch clones the repository and checks out ref. git checkout has no
// way to mark its argument as a revision that still works with --detach, so
// the ref goes through rev-parse after --end-of-options, where a leading "-"
// can only be part of a revision name; checkout then gets a hex id. A fresh
// clone has only the default branch locally, so the remote branch is tried
// second.
func (s *script) gitFetch(dir, repo, ref string) {
	// The repo URL may carry a token; git's own messages go to output,
	// ours never name it.
	s.command([]string{"git", "clone", "--quiet", "--no-checkout", "--", repo, dir})
	k := s.register([]string{"git", "rev-parse", ref})
	resolve := func(rev string) string {
		return "$(git -C " + ShellQuote(dir) + " rev-parse --verify --quiet --end-of-options " + ShellQuote(rev+"^{commit}") + " </dev/null)"
	}
	s.raw("c " + strconv.Itoa(k) + " && { sha=" + resolve(ref) + " || sha=" + resolve("refs/remotes/origin/"+ref) + " || sha=; " +
		"case \"$sha\" in ''|*[!0-9a-f]*) m fail noref; rc=1 ;; *) echo " + ShellQuote("checking out "+ref+" at ") + "\"$sha\" ;; esac; }")
	k = s.register([]string{"git", "checkout", "--quiet", "--detach", ref})
	s.raw("c " + strconv.Itoa(k) + " && r " + s.timeout(s.limit, false) + "git -C " + ShellQuote(dir) + " checkout --quiet --detach \"$sha\"")
}

func (j *job) migrateScript(t *target) *script {
	s := j.newScript(t)
	if t.remote {
		s.raw("w")
	}
	s.begin(StepMigrate)
	s.cd(t.releaseDir(j.release))
	for _, argv := range expandAll(j.r.Recipe.Migrate, j.r.vars(t, j.release, j.ref)) {
		s.command(argv)
	}
	s.end(StepMigrate)
	s.finish()
	return s
}

// switchTo points current at release id atomically: the new link is made
// beside it and renamed over it, so a reader never finds current missing or
// half-written. Never to a release that is not there.
func (s *script) switchTo(t *target, id string) {
	k := s.register([]string{"test", "-d", t.releaseDir(id)})
	s.raw("c " + strconv.Itoa(k) + " && { [ -d " + ShellQuote(t.releaseDir(id)) + " ] || { m fail norelease " + ShellQuote(id) + "; rc=1; }; }")
	tmp := path.Join(t.base, "current.tmp")
	s.builtin("ln", "-sfn", "--", path.Join("releases", id), tmp)
	s.builtin("mv", "-T", "--", tmp, t.currentLink())
}

// liveOpts choose the steps of a go-live script.
type liveOpts struct {
	switchTo string // release to switch to; "" = no switch
	restart  bool
	health   bool
	prune    bool     // run the prune step
	remove   []string // release dirs prune removes
}

// liveScript switches, restarts, runs the health command with its retries
// and prunes, stopping at the first failure.
func (j *job) liveScript(t *target, o liveOpts) *script {
	s := j.newScript(t)
	if t.remote {
		s.raw("w")
	}
	j.liveSteps(s, t, o)
	s.finish()
	return s
}

// rollbackScript is a rollback in one session (remote hosts): the check,
// then a wait at a barrier until the bot says "go" on stdin, which it does
// once every host passed its check; the end of stdin instead means another
// host failed or the job was cancelled, and nothing switches.
func (j *job) rollbackScript(t *target) *script {
	s := j.newScript(t)
	s.checkSteps(t, j.release)
	s.raw(`m ready; IFS= read -r go <&3 || go=; [ "$go" = go ] || { m exit 1; exit 1; }`)
	s.raw("w")
	j.liveSteps(s, t, liveOpts{switchTo: j.release, restart: true, health: true})
	s.finish()
	return s
}

func (j *job) liveSteps(s *script, t *target, o liveOpts) {
	rc := j.r.Recipe
	vars := j.r.vars(t, j.release, j.ref)
	if o.switchTo != "" {
		s.begin(StepSwitch)
		s.switchTo(t, o.switchTo)
		s.end(StepSwitch)
	}
	if o.restart && len(rc.Restart) > 0 {
		s.begin(StepRestart)
		s.cd(t.currentLink())
		for _, argv := range expandAll(rc.Restart, vars) {
			s.command(argv)
		}
		s.end(StepRestart)
	}
	if o.health && len(rc.Health.Command) > 0 {
		h := rc.Health
		s.begin(StepHealth)
		s.cd(t.currentLink())
		limit := s.limit
		if h.Timeout > 0 {
			limit = seconds(h.Timeout)
		}
		interval := h.Interval
		if interval <= 0 {
			interval = defaultInterval
		}
		s.raw("i=0; while :; do i=$((i+1)); rc=0")
		s.timed(limit, true, expand(h.Command, vars))
		s.raw("[ \"$rc\" != 0 ] && [ \"$i\" -lt " + strconv.Itoa(max(h.Retries, 1)) + " ] && [ \"$stop\" = 0 ] || break")
		s.raw("z " + seconds(interval) + "; done; m tries \"$i\"")
		s.end(StepHealth)
	}
	if o.prune {
		s.begin(StepPrune)
		if len(o.remove) > 0 {
			s.builtin(append([]string{"rm", "-rf", "--"}, o.remove...)...)
		}
		s.end(StepPrune)
	}
}

// undoScript puts current back to id ("" = remove current: the host had
// none) and restarts if asked, after a failed or cancelled go-live. It runs
// to its end even though the job may be cancelled.
func (j *job) undoScript(t *target, id string, restart bool) *script {
	s := j.recoveryScript(t)
	s.begin(StepSwitchBack)
	if id == "" {
		s.builtin("rm", "-f", "--", t.currentLink())
	} else {
		s.switchTo(t, id)
		if restart && len(j.r.Recipe.Restart) > 0 {
			s.cd(t.currentLink())
			for _, argv := range expandAll(j.r.Recipe.Restart, j.r.vars(t, id, j.ref)) {
				s.command(argv)
			}
		}
	}
	s.end(StepSwitchBack)
	s.finish()
	return s
}

// removeScript deletes the release dir this job made.
func (j *job) removeScript(t *target) *script {
	s := j.recoveryScript(t)
	s.begin("remove")
	s.builtin("rm", "-rf", "--", t.releaseDir(j.release))
	s.end("remove")
	s.finish()
	return s
}

// checkScript reads current and checks that release id exists (rollback,
// restart after a restore).
func (j *job) checkScript(t *target, id string) *script {
	s := j.newScript(t)
	s.checkSteps(t, id)
	s.finish()
	return s
}

func (s *script) checkSteps(t *target, id string) {
	s.begin(StepCheck)
	s.readState(t)
	if id != "" {
		k := s.register([]string{"test", "-d", t.releaseDir(id)})
		s.raw("c " + strconv.Itoa(k) + " && { [ -d " + ShellQuote(t.releaseDir(id)) + " ] || { m fail norelease " + ShellQuote(id) + "; rc=1; }; }")
	}
	s.end(StepCheck)
}
