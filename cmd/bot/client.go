package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/api"
	"github.com/shipbot/shipbot/internal/apitoken"
)

// Exit codes of `bot deploy` and `bot rollback`, for CI jobs.
const (
	clientSucceeded = 0
	clientFailed    = 1 // failed, rolled back, cancelled, interrupted; or shipbot could not be asked
	clientRefused   = 2 // policy, lock, bad input, bad token
	clientTimeout   = 3
	clientAwaiting  = 4 // still awaiting approval when --timeout ran out
)

const clientUsage = `usage: bot deploy APP ENV [REF] --server URL [--wait] [--timeout 30m] [--idempotency-key KEY]
       bot rollback APP ENV [RELEASE] --server URL [--wait] [--timeout 30m] [--idempotency-key KEY]
The token is read from SHIPBOT_TOKEN; --server defaults to SHIPBOT_SERVER.
Exit codes: 0 succeeded (or accepted, without --wait), 1 failed/rolled back/cancelled,
2 refused (policy, lock, bad input, bad token), 3 timed out, 4 still awaiting approval at the timeout.`

// cmdClient starts a deploy or rollback through shipbot's HTTP API and,
// with --wait, follows it to its end.
func cmdClient(ctx context.Context, action string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, clientUsage) }
	server := fs.String("server", os.Getenv("SHIPBOT_SERVER"), "shipbot's base URL (http.listen), e.g. https://shipbot.example.com")
	wait := fs.Bool("wait", false, "follow the job and exit with its outcome")
	timeout := fs.Duration("timeout", 30*time.Minute, "with --wait: give up after this long")
	key := fs.String("idempotency-key", os.Getenv("SHIPBOT_IDEMPOTENCY_KEY"), "a retry with the same key gets the first job back")
	// Flags may follow the positional words (bot deploy app env --wait).
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return clientRefused
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) < 2 || len(pos) > 3 || *server == "" {
		fmt.Fprintln(stderr, clientUsage)
		return clientRefused
	}
	token := os.Getenv("SHIPBOT_TOKEN")
	if token == "" {
		fmt.Fprintln(stderr, "SHIPBOT_TOKEN is not set: put the API token in it (a CI secret variable)")
		return clientRefused
	}
	req := api.JobRequest{Action: action, App: pos[0], Env: pos[1]}
	if len(pos) == 3 {
		if action == "deploy" {
			req.Ref = pos[2]
		} else {
			req.Release = pos[2]
		}
	}
	if *key == "" {
		// The client's own retries of a lost answer must not start two jobs.
		k, err := apitoken.New()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return clientFailed
		}
		*key = "bot-" + k[:22]
	}
	c := &apiClient{base: strings.TrimRight(*server, "/"), token: token, http: &http.Client{}}
	deadline := time.Now().Add(*timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	created, code := c.create(ctx, req, *key, stderr)
	if code >= 0 {
		return code
	}
	what := fmt.Sprintf("%s %s → %s", action, req.App, req.Env)
	fmt.Fprintf(stdout, "job #%d: %s %s\n", created.ID, what, created.State)
	if created.ApprovalID != "" {
		fmt.Fprintf(stdout, "waiting for a second person to approve in chat (approval %s)\n", created.ApprovalID)
	}
	if !*wait {
		return clientSucceeded
	}
	return c.follow(ctx, created.ID, stdout, stderr)
}

type apiClient struct {
	base, token string
	http        *http.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, body []byte, header map[string]string) (*http.Response, error) {
	r, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return c.http.Do(r)
}

// create posts the job, retrying a lost answer with the same key. It
// returns an exit code >= 0 when there is no job to follow.
func (c *apiClient) create(ctx context.Context, req api.JobRequest, key string, stderr io.Writer) (api.Created, int) {
	body, _ := json.Marshal(req)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				fmt.Fprintf(stderr, "shipbot did not answer before the timeout: %v\n", lastErr)
				return api.Created{}, clientTimeout
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		resp, err := c.do(ctx, http.MethodPost, api.Prefix+"/jobs", body, map[string]string{"Idempotency-Key": key})
		if err != nil {
			lastErr = err
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted:
			var out api.Created
			if err := json.Unmarshal(b, &out); err != nil {
				fmt.Fprintf(stderr, "shipbot's answer is not understood: %v\n", err)
				return api.Created{}, clientFailed
			}
			return out, -1
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusConflict && errorKind(b) == "in_progress":
			lastErr = fmt.Errorf("%s: %s", resp.Status, errorMessage(b))
			continue
		}
		fmt.Fprintf(stderr, "refused (%s): %s\n", resp.Status, errorMessage(b))
		return api.Created{}, clientRefused
	}
	fmt.Fprintf(stderr, "shipbot could not be asked: %v\n", lastErr)
	return api.Created{}, clientFailed
}

func errorKind(b []byte) string {
	var e api.Error
	_ = json.Unmarshal(b, &e)
	return e.Error
}

func errorMessage(b []byte) string {
	var e api.Error
	if json.Unmarshal(b, &e) != nil || e.Message == "" {
		return strings.TrimSpace(string(b))
	}
	if e.Lock != nil {
		return fmt.Sprintf("%s (locked by %s: %s)", e.Message, e.Lock.Holder, e.Lock.Reason)
	}
	return e.Message
}

// follow reads the job's event stream, printing its progress, until it ends
// or ctx does; a dropped stream (shipbot restarting) is opened again.
func (c *apiClient) follow(ctx context.Context, id int64, stdout, stderr io.Writer) int {
	p := &progress{out: stdout}
	for {
		done, err := c.stream(ctx, id, p)
		if done {
			return p.exit(stdout)
		}
		if ctx.Err() != nil {
			if p.last.State == "awaiting_approval" {
				fmt.Fprintf(stdout, "job #%d is still awaiting approval; giving up waiting (the job stays pending in chat)\n", id)
				return clientAwaiting
			}
			fmt.Fprintf(stdout, "job #%d is still %s; giving up waiting (the job goes on)\n", id, orDash(p.last.State))
			return clientTimeout
		}
		var refused *refusedError
		if errors.As(err, &refused) {
			fmt.Fprintln(stderr, refused.Error())
			return clientRefused
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// stream reads one connection of events; done once the job has ended.
func (c *apiClient) stream(ctx context.Context, id int64, p *progress) (bool, error) {
	resp, err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s/jobs/%d/events", api.Prefix, id), nil, nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode >= 500 {
			return false, fmt.Errorf("%s", resp.Status)
		}
		return false, &refusedError{msg: fmt.Sprintf("cannot follow job #%d (%s): %s", id, resp.Status, errorMessage(b))}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "job" {
				var j api.Job
				if err := json.Unmarshal([]byte(data.String()), &j); err == nil {
					p.show(j)
				}
			}
			if event == "end" {
				return true, nil
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, io.ErrUnexpectedEOF
}

// progress prints what changed since the last event: the state, each step.
type progress struct {
	out   io.Writer
	last  api.Job
	steps map[string]string
}

func (p *progress) show(j api.Job) {
	if p.steps == nil {
		p.steps = map[string]string{}
	}
	if j.State != p.last.State {
		fmt.Fprintf(p.out, "state: %s\n", j.State)
	}
	for _, s := range j.Steps {
		if p.steps[s.Name] != string(s.State) && s.State != "pending" {
			line := fmt.Sprintf("  %-8s %s", s.State, s.Name)
			if s.Detail != "" {
				line += ": " + s.Detail
			}
			fmt.Fprintln(p.out, line)
		}
		p.steps[s.Name] = string(s.State)
	}
	p.last = j
}

func (p *progress) exit(stdout io.Writer) int {
	j := p.last
	fmt.Fprintf(stdout, "job #%d %s", j.ID, j.State)
	switch {
	case j.Release != "":
		fmt.Fprintf(stdout, " (release %s)", j.Release)
	case j.RollbackTo != "":
		fmt.Fprintf(stdout, " (to release %s)", j.RollbackTo)
	case j.Backup != "":
		fmt.Fprintf(stdout, " (backup %s)", j.Backup)
	}
	if j.Outcome != "" {
		fmt.Fprintf(stdout, ": %s", j.Outcome)
	}
	fmt.Fprintln(stdout)
	if j.State == "succeeded" {
		return clientSucceeded
	}
	for _, l := range j.Output {
		fmt.Fprintln(stdout, "  | "+l)
	}
	return clientFailed
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cmdToken prints a fresh random API token.
func cmdToken(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "new" {
		fmt.Fprintln(stderr, "usage: bot token new   (prints a fresh random API token for api.tokens)")
		return 2
	}
	t, err := apitoken.New()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, t)
	return 0
}
