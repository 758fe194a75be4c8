package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// maxBody bounds one webhook delivery; GitLab's biggest pipeline payloads
// are a few hundred kilobytes.
const maxBody = 1 << 20

// Secrets are the per-source webhook secrets; a source without one is not
// served at all (fail closed).
type Secrets struct {
	GitLab, GitHub, Generic audit.Secret
	Dokploy                 audit.Secret
	DokployHeader           string // the header Dokploy's custom provider sends the secret in
}

// Store is what the service and the job notifier need of the database.
type Store interface {
	notify.Ingester
	Enqueue(ctx context.Context, posts ...notify.Post) error
	PipelineTopics(ctx context.Context, project, sha string) ([]string, error)
	SentRef(ctx context.Context, topic string, ch notify.Channel) (*notify.Ref, error)
}

// Options configure a Service.
type Options struct {
	Store   Store
	Secrets Secrets
	Routes  Routes
	Offers  []DeployOffer
	// Projects maps an app to its CI project, so deploy notices route and
	// thread like the app's pipelines; an app not listed is its own project.
	Projects map[string]string
	// Wake tells the relay there is work.
	Wake func()
	// Count hears every delivery's source and result, for metrics.
	Count func(source, result string)
	Log   *slog.Logger
	// AutoDeploy are the pipelines.auto_deploy rules, kept in Auto.
	AutoDeploy []AutoRule
	Auto       AutoStore
}

// Service is the webhook side of pipeline notifications and the notifier
// of shipbot's own jobs.
type Service struct {
	o    Options
	auto autoDeployer
}

// New returns a Service.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Wake == nil {
		o.Wake = func() {}
	}
	if o.Count == nil {
		o.Count = func(string, string) {}
	}
	return &Service{o: o}
}

// Route is one webhook endpoint: POST Path is served by Handler.
type Route struct {
	Path    string
	Handler http.Handler
}

// Routes are the endpoints of the sources that have a secret.
func (s *Service) Routes() []Route {
	var out []Route
	sec := s.o.Secrets
	add := func(source string, on bool, verify func(*http.Request, []byte) error) {
		if on {
			out = append(out, Route{Path: "/hooks/" + source, Handler: s.handler(source, verify)})
		}
	}
	add(GitLab, !sec.GitLab.IsZero(), func(r *http.Request, _ []byte) error { return VerifyGitLab(r.Header, sec.GitLab) })
	add(GitHub, !sec.GitHub.IsZero(), func(r *http.Request, b []byte) error { return VerifyGitHub(r.Header, b, sec.GitHub) })
	add(Dokploy, !sec.Dokploy.IsZero(), func(r *http.Request, _ []byte) error {
		return VerifyDokploy(r.Header, sec.DokployHeader, sec.Dokploy)
	})
	add(Generic, !sec.Generic.IsZero(), func(r *http.Request, b []byte) error { return VerifyGeneric(r.Header, b, sec.Generic) })
	return out
}

// Result words, also the metrics' result label.
const (
	ResultAccepted   = "accepted"
	ResultDuplicate  = "duplicate"
	ResultIgnored    = "ignored"
	ResultUnrouted   = "unrouted"
	ResultStale      = "stale"
	ResultUnverified = "unverified"
	ResultInvalid    = "invalid"
	ResultError      = "error"
)

func (s *Service) handler(source string, verify func(*http.Request, []byte) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer := func(code int, result, detail string) {
			s.o.Count(source, result)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"result": result, "detail": detail})
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			answer(http.StatusRequestEntityTooLarge, ResultInvalid, "body over 1 MiB or unreadable")
			return
		}
		if err := verify(r, body); err != nil {
			s.o.Log.Warn("webhook refused", "source", source, "remote", r.RemoteAddr, "err", err)
			answer(http.StatusUnauthorized, ResultUnverified, "signature or token missing or wrong")
			return
		}
		events, err := Parse(source, r.Header, body)
		if errors.Is(err, ErrIgnored) {
			answer(http.StatusOK, ResultIgnored, err.Error())
			return
		}
		if err != nil {
			answer(http.StatusBadRequest, ResultInvalid, err.Error())
			return
		}
		key := DeliveryKey(source, r.Header, body)
		result := ResultAccepted
		for _, e := range events {
			res, err := s.ingest(r.Context(), key, e)
			if err != nil {
				s.o.Log.Error("webhook not stored", "source", source, "key", key, "err", err)
				// 5xx: the source retries, and the key was not recorded.
				answer(http.StatusInternalServerError, ResultError, "not stored; retry")
				return
			}
			result = res
			if err := s.autoDeploy(r.Context(), e); err != nil {
				s.o.Log.Error("auto-deploy not recorded", "source", source, "key", key, "err", err)
				answer(http.StatusInternalServerError, ResultError, "not stored; retry")
				return
			}
		}
		s.o.Wake()
		answer(http.StatusOK, result, "")
	})
}

// ingest merges e into its pipeline's stored record and writes the record
// and the outbox rows of the card rendered from it, in one transaction.
func (s *Service) ingest(ctx context.Context, key string, e Event) (string, error) {
	result := ResultAccepted
	dup, err := s.o.Store.Ingest(ctx, key, e.Key(), func(prev *notify.Tracked) (*notify.Tracked, []notify.Post, error) {
		var rec Event
		if prev != nil {
			if err := json.Unmarshal(prev.Event, &rec); err != nil {
				// A record this shipbot cannot read is not overwritten
				// with less than it held: the delivery fails and is retried.
				return nil, nil, fmt.Errorf("stored pipeline %s: %w", prev.Topic, err)
			}
		}
		merged := Merge(rec, e)
		raw, err := json.Marshal(merged)
		if err != nil {
			return nil, nil, err
		}
		if prev != nil && string(raw) == string(prev.Event) {
			result = ResultStale // late, redelivered in other words, or older than what is known
			return nil, nil, nil
		}
		next := &notify.Tracked{Topic: merged.Key(), Project: merged.Project, SHA: merged.SHA, Status: merged.Shown(), Event: raw}
		chats := s.o.Routes.Match(merged)
		if len(chats) == 0 {
			result = ResultUnrouted
			return next, nil, nil
		}
		msg := Card(merged, offerFor(s.o.Offers, merged))
		posts := make([]notify.Post, len(chats))
		for i, ch := range chats {
			posts[i] = notify.Post{Topic: merged.Key(), Channel: ch, Message: msg}
		}
		return next, posts, nil
	})
	if dup {
		result = ResultDuplicate
	}
	return result, err
}

var _ notify.JobRoutes = (*Service)(nil)

// JobChats implements notify.JobRoutes: shipbot's own jobs go through the
// same routes as pipelines (source "shipbot", the app's CI project), each
// chat with the message of the pipeline whose SHA the job deploys, so the
// notice threads under it. It only reads: the store calls it inside the
// transaction that changes the job.
func (s *Service) JobChats(ctx context.Context, j deploy.Job, status string) []notify.RoutedChat {
	project := j.App
	if p, found := s.o.Projects[j.App]; found {
		project = p
	}
	chats := s.o.Routes.match(Shipbot, project, j.Ref, status, "")
	if len(chats) == 0 {
		return nil
	}
	var pipelineTopics []string
	if j.Ref != "" {
		pipelineTopics, _ = s.o.Store.PipelineTopics(ctx, project, j.Ref)
	}
	out := make([]notify.RoutedChat, len(chats))
	for i, ch := range chats {
		out[i].Channel = ch
		for _, t := range pipelineTopics {
			if ref, err := s.o.Store.SentRef(ctx, t, ch); err == nil && ref != nil {
				out[i].Under = ref
				break
			}
		}
	}
	return out
}
