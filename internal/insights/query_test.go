package insights_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/insights"
)

func TestParseQuery(t *testing.T) {
	q, err := insights.ParseQuery("helpdesk", "production", "30d")
	if err != nil || q.App != "helpdesk" || q.Env != "production" || q.Days != 30 {
		t.Fatalf("%+v %v", q, err)
	}
	if q, err := insights.ParseQuery("", "", ""); err != nil || q.Days != 7 || q.App != "" {
		t.Fatalf("empty: %+v %v", q, err)
	}
	for _, bad := range [][3]string{{"Help Desk", "", ""}, {"helpdesk", "prod;rm", ""}, {"", "production", ""},
		{"helpdesk", "", "365d"}, {"helpdesk", "", strings.Repeat("9", 100) + "d"}} {
		if _, err := insights.ParseQuery(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("%q accepted", bad)
		} else if len(err.Error()) > 120 {
			t.Errorf("%q: error echoes the whole input: %v", bad, err)
		}
	}
}

// failingStore fails the method named by fail.
type failingStore struct {
	fail string
}

var errDisk = errors.New("disk I/O error")

func (f failingStore) DeliveryJobs(context.Context, time.Time) ([]deploy.Job, error) {
	if f.fail == "jobs" {
		return nil, errDisk
	}
	return []deploy.Job{{App: "a", Env: "e", Action: deploy.ActionDeploy, State: deploy.Succeeded, Ref: "abcdef1",
		Ended: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}, nil
}

func (f failingStore) DecidedApprovals(context.Context, time.Time) ([]deploy.Approval, error) {
	if f.fail == "approvals" {
		return nil, errDisk
	}
	return nil, nil
}

func (f failingStore) CommitTime(context.Context, string, string) (time.Time, error) {
	if f.fail == "commit" {
		return time.Time{}, errDisk
	}
	return time.Time{}, nil
}

func (f failingStore) DeployedCommit(context.Context, string, string, string) (string, error) {
	if f.fail == "pin" {
		return "", errDisk
	}
	return "", nil
}

// A store that fails fails the report: no figures computed from half the data.
func TestStoreErrorsFailTheReport(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC) }
	for _, fail := range []string{"jobs", "approvals", "commit", "pin"} {
		s := insights.New(insights.Options{Store: failingStore{fail: fail}, Now: now})
		if r, err := s.Stats(context.Background(), insights.Query{}); !errors.Is(err, errDisk) || r != nil {
			t.Errorf("%s failing: %+v %v", fail, r, err)
		}
		if _, _, err := s.Message(context.Background(), insights.Query{}, ""); !errors.Is(err, errDisk) {
			t.Errorf("%s failing: message %v", fail, err)
		}
	}
	// A chart that cannot be drawn leaves the figures, saying so.
	s := insights.New(insights.Options{Store: failingStore{}, Now: now,
		Chart: func(*insights.Report, string) ([]byte, error) { return nil, errors.New("no fonts") }})
	m, r, err := s.Message(context.Background(), insights.Query{}, "")
	if err != nil || len(r.Envs) != 1 || m.Attachment != nil || !strings.Contains(m.Text, "the chart could not be drawn: no fonts") {
		t.Fatalf("%+v %v", m, err)
	}
}
