package pipeline

import (
	"testing"
	"time"
)

// The commit time a pipeline-level event carried stays on the record when
// job events (which carry none: a GitLab Job Hook, a workflow_job) merge
// in after it; a record started by a job event takes it when it comes.
func TestMergeKeepsCommitTime(t *testing.T) {
	commit := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	run := Event{Source: GitHub, Kind: KindPipeline, Project: "acme/app", ID: "9", SHA: "abc", Status: StatusRunning,
		Time: commit.Add(time.Minute), CommitTime: commit}
	job := Event{Source: GitHub, Kind: KindJob, Project: "acme/app", ID: "9", SHA: "abc",
		Jobs: []Job{{Name: "test", Status: StatusSuccess, Time: commit.Add(5 * time.Minute)}}}
	if rec := Merge(Merge(Event{}, run), job); !rec.CommitTime.Equal(commit) {
		t.Fatalf("run then job: commit time %v", rec.CommitTime)
	}
	if rec := Merge(Merge(Event{}, job), run); !rec.CommitTime.Equal(commit) {
		t.Fatalf("job then run: commit time %v", rec.CommitTime)
	}
	// The generic source takes commit_time.
	evs, err := Parse(Generic, nil, []byte(`{"project":"acme/app","id":"1","sha":"abc","status":"success",
		"time":"2026-11-30T09:00:00Z","commit_time":"2026-11-30T08:00:00+00:00"}`))
	if err != nil || len(evs) != 1 || !evs[0].CommitTime.Equal(commit) {
		t.Fatalf("generic: %+v %v", evs, err)
	}
}
