package mcp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipbot/shipbot/internal/apitoken"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// Args are every tool's arguments; each tool's schema names the ones it
// takes and forbids the rest.
type Args struct {
	App     string `json:"app,omitempty"`
	Env     string `json:"env,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Release string `json:"release,omitempty"`
	Lines   int    `json:"lines,omitempty"`
	ID      int64  `json:"id,omitempty"`
	Reason  string `json:"reason,omitempty"`
	For     string `json:"for,omitempty"`
	Limit   int    `json:"limit,omitempty"`
	User    string `json:"user,omitempty"`
	Wait    bool   `json:"wait,omitempty"`
}

// tool is one MCP tool: the chat command it stands for.
type tool struct {
	name, title, desc string
	params            []string // properties of Args it takes
	required          []string
	readOnly          bool
	destructive       bool
	// line builds the command line from arguments the schema has checked;
	// it checks them again against the chat parser's own patterns, so no
	// value can smuggle in a second word or a flag.
	line func(a Args) (string, error)
}

const approvalNote = " If the env requires approval, the job waits as awaiting_approval until a person with an approver role presses Approve on its card in chat (an assistant can never approve); poll the job tool."

var tools = []tool{
	{name: "apps", title: "List apps", readOnly: true,
		desc: "Lists the configured apps and envs with their driver, current release, whether approval is required, and any lock. Same as /apps in chat.",
		line: func(Args) (string, error) { return "/apps", nil }},
	{name: "status", title: "App status", readOnly: true, params: []string{"app", "env"}, required: []string{"app", "env"},
		desc: "Shows what is live on APP/ENV and whether it is healthy (asks the target). Needs status permission. Same as /status.",
		line: func(a Args) (string, error) { return appEnvLine("/status", a) }},
	{name: "releases", title: "Releases", readOnly: true, params: []string{"app", "env"}, required: []string{"app", "env"},
		desc: "Lists the releases on APP/ENV with ref, who deployed, when and state; * marks the live one. Same as /releases.",
		line: func(a Args) (string, error) { return appEnvLine("/releases", a) }},
	{name: "logs", title: "App logs", readOnly: true, params: []string{"app", "env", "lines"}, required: []string{"app", "env"},
		desc: "Shows the last LINES lines (default 50) of the app's log on APP/ENV, capped by the env's logs limits like in chat, with secrets redacted. Needs logs permission. Same as /logs.",
		line: func(a Args) (string, error) {
			l, err := appEnvLine("/logs", a)
			if err == nil && a.Lines != 0 {
				l += " " + strconv.Itoa(a.Lines)
			}
			return l, err
		}},
	{name: "jobs", title: "Recent jobs", readOnly: true,
		desc: "Lists the 15 most recent jobs (deploys, rollbacks, backups) with state and requester. Same as /jobs.",
		line: func(Args) (string, error) { return "/jobs", nil }},
	{name: "job", title: "One job", readOnly: true, params: []string{"id"}, required: []string{"id"},
		desc: "Shows one job's live state: steps, release, outcome, approval and its last output lines. Poll it after deploy, rollback or backup. Same as /job ID.",
		line: func(a Args) (string, error) { return idLine("/job", a) }},
	{name: "audit", title: "Audit log", readOnly: true, params: []string{"limit", "app", "env", "user"},
		desc: "Shows the last LIMIT rows (default 20) of shipbot's hash-chained audit log, optionally filtered by app, env or user. Needs audit:read. Same as /audit.",
		line: auditLine},
	{name: "backups", title: "Backups", readOnly: true, params: []string{"app", "env"}, required: []string{"app", "env"},
		desc: "Lists the backups of APP/ENV with time, size, who and last restore drill. Needs backup permission. Same as /backups.",
		line: func(a Args) (string, error) { return appEnvLine("/backups", a) }},
	{name: "plan", title: "Plan a deploy (dry run)", readOnly: true, params: []string{"app", "env", "ref"}, required: []string{"app", "env"},
		desc: "Dry run of a deploy: shows from and to release, hosts, steps, the lock and whether approval would be required. Nothing runs. Needs deploy permission. Same as /deploy APP ENV [REF] --plan.",
		line: func(a Args) (string, error) {
			l, err := deployLine(a)
			return l + " --plan", err
		}},
	{name: "deploy", title: "Deploy", destructive: true, params: []string{"app", "env", "ref", "wait"}, required: []string{"app", "env"},
		desc: "Deploys REF (or the env's default ref) to APP/ENV and returns at once with the job id and state; with wait: true it waits (bounded) for the end and sends progress notifications. Needs deploy permission; refused while the env is locked." + approvalNote + " Same as /deploy.",
		line: deployLine},
	{name: "rollback", title: "Roll back", destructive: true, params: []string{"app", "env", "release"}, required: []string{"app", "env"},
		desc: "Switches APP/ENV back to the previous good release (or RELEASE) and returns the job id and state. Needs rollback permission." + approvalNote + " Same as /rollback.",
		line: func(a Args) (string, error) {
			l, err := appEnvLine("/rollback", a)
			if err == nil && a.Release != "" {
				if !deploy.ValidName(a.Release) {
					return "", fmt.Errorf("release %q: want a release id matching %s", a.Release, deploy.NamePattern)
				}
				l += " " + a.Release
			}
			return l, err
		}},
	{name: "backup", title: "Back up now", params: []string{"app", "env"}, required: []string{"app", "env"},
		desc: "Backs up APP/ENV's files and databases now and returns the job id and state. Needs backup permission. Same as /backup.",
		line: func(a Args) (string, error) { return appEnvLine("/backup", a) }},
	{name: "lock", title: "Lock an env", params: []string{"app", "env", "reason", "for"}, required: []string{"app", "env", "reason"},
		desc: "Locks APP/ENV so nobody deploys until it is unlocked or, with FOR (like 2h), it expires. Needs lock permission. Same as /lock.",
		line: lockLine},
	{name: "unlock", title: "Unlock an env", params: []string{"app", "env"}, required: []string{"app", "env"},
		desc: "Removes the lock of APP/ENV (its holder, or lock:force). Same as /unlock.",
		line: func(a Args) (string, error) { return appEnvLine("/unlock", a) }},
	{name: "cancel", title: "Cancel a job", destructive: true, params: []string{"id"}, required: []string{"id"},
		desc: "Stops job ID (queued, awaiting approval or running). Needs cancel permission. Same as /cancel.",
		line: func(a Args) (string, error) { return idLine("/cancel", a) }},
}

func appEnvLine(cmd string, a Args) (string, error) {
	if !deploy.ValidName(a.App) {
		return "", fmt.Errorf("app %q: want a name matching %s", a.App, deploy.NamePattern)
	}
	if !deploy.ValidName(a.Env) {
		return "", fmt.Errorf("env %q: want a name matching %s", a.Env, deploy.NamePattern)
	}
	return cmd + " " + a.App + " " + a.Env, nil
}

func idLine(cmd string, a Args) (string, error) {
	if a.ID < 1 {
		return "", errors.New("id: want a job id, a positive number")
	}
	return cmd + " " + strconv.FormatInt(a.ID, 10), nil
}

func deployLine(a Args) (string, error) {
	l, err := appEnvLine("/deploy", a)
	if err != nil {
		return "", err
	}
	if a.Ref != "" {
		if err := deploy.ValidateRef(a.Ref); err != nil || strings.HasPrefix(a.Ref, "-") {
			return "", fmt.Errorf("ref %q is not a safe git ref", a.Ref)
		}
		l += " " + a.Ref
	}
	return l, nil
}

func auditLine(a Args) (string, error) {
	l := "/audit"
	if a.Limit != 0 {
		l += " " + strconv.Itoa(a.Limit)
	}
	for _, f := range []struct{ k, v string }{{"app", a.App}, {"env", a.Env}, {"user", a.User}} {
		if f.v == "" {
			continue
		}
		if !deploy.ValidName(f.v) {
			return "", fmt.Errorf("%s %q: want a name matching %s", f.k, f.v, deploy.NamePattern)
		}
		l += " " + f.k + "=" + f.v
	}
	return l, nil
}

func lockLine(a Args) (string, error) {
	l, err := appEnvLine("/lock", a)
	if err != nil {
		return "", err
	}
	if a.For != "" {
		if strings.IndexFunc(a.For, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) >= 0 {
			return "", fmt.Errorf("for %q: want a duration like 30m, 2h or 1d", a.For)
		}
		l += " --for " + a.For
	}
	reason := strings.Join(strings.Fields(a.Reason), " ")
	if reason == "" {
		return "", errors.New("reason: say why the env is locked")
	}
	if strings.HasPrefix(reason, "-") {
		// The parser would take it for an option (--for); the for
		// argument is the way to set one.
		return "", errors.New("reason: must not start with '-'")
	}
	return l + " " + reason, nil
}

// schema is t's input schema: app and env are enums of the configured names.
func (t tool) schema(cat commands.Catalog) *jsonschema.Schema {
	apps := slices.Sorted(maps.Keys(cat))
	envSet := map[string]bool{}
	for _, a := range apps {
		for e := range cat[a] {
			envSet[e] = true
		}
	}
	envs := slices.Sorted(maps.Keys(envSet))
	enum := func(xs []string) []any {
		out := make([]any, len(xs))
		for i, x := range xs {
			out[i] = x
		}
		return out
	}
	f := func(v float64) *float64 { return &v }
	n := func(v int) *int { return &v }
	props := map[string]*jsonschema.Schema{
		"app": {Type: "string", Description: "The app, as configured in shipbot.", Enum: enum(apps)},
		"env": {Type: "string", Description: "The environment of the app (staging, production…).", Enum: enum(envs)},
		"ref": {Type: "string", MaxLength: n(200), Description: "A git ref, tag or commit to deploy; leave out for the env's default ref."},
		"release": {Type: "string", MaxLength: n(63), Pattern: deploy.NamePattern.String(),
			Description: "A release id from the releases tool; leave out for the previous good release."},
		"lines":  {Type: "integer", Minimum: f(1), Maximum: f(1000), Description: "How many log lines (default 50); the env's logs limit caps it."},
		"id":     {Type: "integer", Minimum: f(1), Description: "A job id, as deploy or jobs return it."},
		"reason": {Type: "string", MinLength: n(1), MaxLength: n(200), Description: "Why the env is locked; shown to everyone who tries to deploy."},
		"for":    {Type: "string", MaxLength: n(16), Description: "How long the lock lasts, like 30m, 2h or 1d; leave out for the env's default."},
		"limit":  {Type: "integer", Minimum: f(1), Maximum: f(200), Description: "How many audit rows (default 20)."},
		"user":   {Type: "string", MaxLength: n(63), Pattern: deploy.NamePattern.String(), Description: "Only rows of this shipbot user."},
		"wait": {Type: "boolean", Description: "Wait for the job to end (at most a few minutes), sending progress notifications; " +
			"it returns early while the job awaits approval."},
	}
	if len(apps) == 0 {
		props["app"].Enum, props["env"].Enum = nil, nil
	}
	s := &jsonschema.Schema{Type: "object", Properties: map[string]*jsonschema.Schema{}, Required: t.required,
		AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}}}
	for _, p := range t.params {
		s.Properties[p] = props[p]
	}
	return s
}

// build makes the SDK server with every tool for catalog cat.
func (s *Server) build(cat commands.Catalog) *sdk.Server {
	srv := sdk.NewServer(&sdk.Implementation{Name: "shipbot", Title: "shipbot", Version: s.o.Version},
		&sdk.ServerOptions{Logger: s.sdkLog(), Instructions: "shipbot deploys, rolls back, backs up and inspects the team's apps. " +
			"Every call runs as the user the token belongs to, under the same permissions, locks, approvals and audit log as a chat command. " +
			"Acting tools return a job id at once; poll the job tool. Production changes may wait for a person's approval in chat."})
	for _, t := range tools {
		t := t
		// Reads change nothing, so repeating one is harmless too.
		hints := &sdk.ToolAnnotations{Title: t.title, ReadOnlyHint: t.readOnly, IdempotentHint: t.readOnly}
		if !t.readOnly {
			d := t.destructive
			hints.DestructiveHint = &d
		}
		open := false
		hints.OpenWorldHint = &open
		sdk.AddTool(srv, &sdk.Tool{Name: t.name, Title: t.title, Description: t.desc, InputSchema: t.schema(cat), Annotations: hints},
			func(ctx context.Context, req *sdk.CallToolRequest, a Args) (*sdk.CallToolResult, any, error) {
				return s.call(ctx, req, t, a)
			})
	}
	return srv
}

// Refusal is the structured content of a refused call.
type Refusal struct {
	Refused bool   `json:"refused"`
	Denial  string `json:"denial,omitempty"`
	Reason  string `json:"reason"`
}

// Answer is the structured content of a read tool: the chat message.
type Answer struct {
	Title  string   `json:"title"`
	Text   string   `json:"text,omitempty"`
	Fields []Field  `json:"fields,omitempty"`
	Steps  []Step   `json:"steps,omitempty"`
	Lines  []string `json:"lines,omitempty"`
	// Truncated says the lines were cut to keep the answer small.
	Truncated bool `json:"truncated,omitempty"`
}

// Field is one fact of an Answer.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Step is one checklist line of an Answer or a Job.
type Step struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Job is the structured content of an acting tool and of job.
type Job struct {
	JobID       int64    `json:"job_id"`
	Action      string   `json:"action"`
	App         string   `json:"app"`
	Env         string   `json:"env"`
	Ref         string   `json:"ref,omitempty"`
	Release     string   `json:"release,omitempty"`     // a deploy's new release
	RollbackTo  string   `json:"rollback_to,omitempty"` // a rollback's target release
	Backup      string   `json:"backup,omitempty"`      // the backup a backup, drill or restore acts on
	State       string   `json:"state"`
	Done        bool     `json:"done"`
	Outcome     string   `json:"outcome,omitempty"`
	RequestedBy string   `json:"requested_by"`
	ApprovalID  string   `json:"approval_id,omitempty"`
	ApprovedBy  string   `json:"approved_by,omitempty"`
	Steps       []Step   `json:"steps"`
	Output      []string `json:"output"`
	// Waited is how a wait: true call ended: "done", "awaiting approval"
	// or "time limit" (poll the job tool).
	Waited string `json:"waited,omitempty"`
}

// outputLines is how many of a job's last output lines a tool shows (the
// HTTP API shows as many).
const outputLines = 20

// maxText bounds a tool's text; logs are already capped by the env's
// limits, this holds for every tool whatever the config.
const maxText = 32 << 10

func (s *Server) call(ctx context.Context, req *sdk.CallToolRequest, t tool, a Args) (*sdk.CallToolResult, any, error) {
	if req.Extra == nil || req.Extra.TokenInfo == nil || req.Extra.TokenInfo.UserID == "" {
		// The bearer middleware runs before the SDK; without it no call gets here.
		return nil, nil, errors.New("not authenticated")
	}
	name := req.Extra.TokenInfo.UserID
	line, err := t.line(a)
	if err != nil {
		return refused(Refusal{Refused: true, Denial: "bad input", Reason: err.Error()})
	}
	if s.o.Handler == nil {
		return nil, nil, errors.New("shipbot is starting; try again")
	}
	reply := s.o.Handler.Handle(ctx, commands.Request{Platform: strings.TrimSuffix(apitoken.Prefix, ":"), UserID: name, UserName: name,
		Via: Platform, Chat: notify.Channel{Platform: Platform, ID: name}, Text: line})
	if reply.Refused {
		return refused(Refusal{Refused: true, Denial: reply.Denial, Reason: reply.Notice})
	}
	if reply.JobID != 0 {
		return s.jobResult(ctx, req, reply.JobID, t.name == "deploy" && a.Wait)
	}
	if t.name == "job" {
		return s.jobResult(ctx, req, a.ID, false)
	}
	ans := answer(reply)
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: render(ans)}}}, ans, nil
}

func refused(r Refusal) (*sdk.CallToolResult, any, error) {
	text := "refused"
	if r.Denial != "" {
		text += " (" + r.Denial + ")"
	}
	text += ": " + r.Reason
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: clip(text, maxText)}}}, r, nil
}

// answer turns the chat message into structured content, bounded: the
// newest lines are kept (the end of a log is what one asks for).
func answer(r commands.Reply) Answer {
	if r.Message == nil {
		return Answer{Title: r.Notice}
	}
	m := r.Message
	a := Answer{Title: m.Title, Text: clip(m.Text, 4096)}
	for _, f := range m.Fields {
		a.Fields = append(a.Fields, Field{Name: f.Name, Value: clip(f.Value, 1024)})
	}
	for _, st := range m.Steps {
		a.Steps = append(a.Steps, Step{Name: st.Name, State: st.State, Detail: clip(st.Detail, 1024)})
	}
	budget := maxText - len(a.Text)
	var lines []string
	for i := len(m.Code) - 1; i >= 0; i-- {
		l := clip(m.Code[i], 2048)
		if budget -= len(l) + 1; budget < 0 {
			a.Truncated = true
			break
		}
		lines = append(lines, l)
	}
	slices.Reverse(lines)
	a.Lines = lines
	return a
}

// render is an Answer as plain text for the assistant to read.
func render(a Answer) string {
	var b strings.Builder
	b.WriteString(a.Title)
	b.WriteByte('\n')
	if a.Text != "" {
		b.WriteString(a.Text)
		b.WriteByte('\n')
	}
	for _, f := range a.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	for _, st := range a.Steps {
		fmt.Fprintf(&b, "[%s] %s", st.State, st.Name)
		if st.Detail != "" {
			b.WriteString(" — " + st.Detail)
		}
		b.WriteByte('\n')
	}
	if a.Truncated {
		b.WriteString("(older lines left out)\n")
	}
	for _, l := range a.Lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return clip(b.String(), maxText+8192)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func jobView(j *deploy.Job) Job {
	v := Job{JobID: j.ID, Action: string(j.Action), App: j.App, Env: j.Env, Ref: j.Ref, Release: j.Release, RollbackTo: j.RollbackTo, Backup: j.Backup, State: string(j.State),
		Done: j.State.Terminal(), Outcome: clip(j.Reason, 4096), RequestedBy: j.RequestedBy.User, ApprovalID: j.ApprovalID,
		ApprovedBy: j.ApprovedBy, Steps: []Step{}, Output: []string{}}
	for _, st := range j.Steps {
		v.Steps = append(v.Steps, Step{Name: st.Name, State: string(st.State), Detail: clip(st.Detail, 1024)})
	}
	out := j.Output
	if len(out) > outputLines {
		out = out[len(out)-outputLines:]
	}
	for _, l := range out {
		v.Output = append(v.Output, clip(l, 2048))
	}
	return v
}

func jobText(v Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job #%d %s %s/%s: %s", v.JobID, v.Action, v.App, v.Env, strings.ReplaceAll(v.State, "_", " "))
	switch {
	case v.Release != "":
		fmt.Fprintf(&b, " (release %s)", v.Release)
	case v.RollbackTo != "":
		fmt.Fprintf(&b, " (to release %s)", v.RollbackTo)
	case v.Backup != "":
		fmt.Fprintf(&b, " (backup %s)", v.Backup)
	}
	if v.Outcome != "" {
		b.WriteString(": " + v.Outcome)
	}
	b.WriteByte('\n')
	if v.State == string(deploy.AwaitingApproval) {
		b.WriteString("Awaiting approval: a person with an approver role must press Approve on the job's card in chat. " +
			"Poll the job tool with id " + strconv.FormatInt(v.JobID, 10) + " to follow it.\n")
	} else if !v.Done {
		b.WriteString("Poll the job tool with id " + strconv.FormatInt(v.JobID, 10) + " to follow it.\n")
	}
	for _, st := range v.Steps {
		fmt.Fprintf(&b, "[%s] %s\n", st.State, st.Name)
	}
	if v.Waited == "time limit" {
		b.WriteString("(stopped waiting; the job goes on)\n")
	}
	return clip(b.String(), maxText)
}

// jobResult answers with job id's state; with wait it first follows the
// job, sending a progress notification at each change, until it ends,
// awaits approval, the call is cancelled or MaxWait passes.
func (s *Server) jobResult(ctx context.Context, req *sdk.CallToolRequest, id int64, wait bool) (*sdk.CallToolResult, any, error) {
	var wake chan struct{}
	if wait {
		var unsubscribe func()
		wake, unsubscribe = s.watch.Watch(id) // before the first read: no change falls between
		defer unsubscribe()
	}
	j, err := s.o.Store.Job(ctx, id)
	if err != nil {
		s.o.Log.Error("mcp: read job", "job", id, "err", err)
		return nil, nil, fmt.Errorf("job #%d could not be read; poll the job tool", id)
	}
	v := jobView(j)
	if wait {
		v = s.follow(ctx, req, id, v, wake)
	}
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: jobText(v)}}}, v, nil
}

func (s *Server) follow(ctx context.Context, req *sdk.CallToolRequest, id int64, v Job, wake chan struct{}) Job {
	token := req.Params.GetProgressToken()
	limit := time.NewTimer(s.o.MaxWait)
	defer limit.Stop()
	progress, last := 0.0, ""
	for {
		if note := progressNote(v); token != nil && note != last {
			progress++
			last = note
			if err := req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: token, Progress: progress,
				Message: note}); err != nil {
				s.o.Log.Debug("mcp: progress not sent", "job", id, "err", err)
			}
		}
		switch {
		case v.Done:
			v.Waited = "done"
			return v
		case v.State == string(deploy.AwaitingApproval):
			v.Waited = "awaiting approval"
			return v
		}
		select {
		case <-ctx.Done():
			v.Waited = "time limit"
			return v
		case <-limit.C:
			v.Waited = "time limit"
			return v
		case <-wake:
		}
		j, err := s.o.Store.Job(context.WithoutCancel(ctx), id)
		if err != nil {
			s.o.Log.Warn("mcp: read job while waiting", "job", id, "err", err)
			v.Waited = "time limit"
			return v
		}
		v = jobView(j)
	}
}

// progressNote says where the job is: its state and the step running.
func progressNote(v Job) string {
	note := strings.ReplaceAll(v.State, "_", " ")
	done := 0
	for _, st := range v.Steps {
		switch st.State {
		case string(deploy.StepRunning):
			note += ": " + st.Name
		case string(deploy.StepDone), string(deploy.StepSkipped):
			done++
		}
	}
	if len(v.Steps) > 0 {
		// The engine adds steps as it reaches them: no total is known.
		note += fmt.Sprintf(" (%d steps done)", done)
	}
	return note
}
