package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// KindBackup is a backup a source ran (Dokploy's scheduled database and
// volume backups).
const KindBackup = "backup"

// dokployNotice is the JSON Dokploy's "custom" notification provider posts
// (Dokploy/dokploy packages/server/src/utils/notifications/utils.ts:239-270:
// the payload as JSON, no retry). Which fields a notice has depends on its
// event: build-success.ts:280-292 and build-error.ts:276-288 send
// type "build"; database-backup.ts:294-309 and volume-backup.ts:475-491 send
// type and status "success"|"error" with databaseName or volumeName;
// docker-cleanup.ts:183-191, dokploy-restart.ts:174-181 and
// dokploy-backup.ts:374-384 name their own type and no project;
// server-threshold.ts:255-266 sends status "alert" and the metric as type.
type dokployNotice struct {
	Title           string `json:"title"`
	Message         string `json:"message"`
	ProjectName     string `json:"projectName"`
	ApplicationName string `json:"applicationName"`
	ApplicationType string `json:"applicationType"`
	BuildLink       string `json:"buildLink"`
	Timestamp       string `json:"timestamp"`
	Status          string `json:"status"`
	Type            string `json:"type"`
	ErrorMessage    string `json:"errorMessage"`
	DatabaseType    string `json:"databaseType"`
	DatabaseName    string `json:"databaseName"`
	VolumeName      string `json:"volumeName"`
	AlertType       string `json:"alertType"`
}

// parseDokploy turns a build notice into a deployment event and a backup
// notice into a backup event; every other notice (cleanup, restart,
// Dokploy's own backup, threshold alerts) is acknowledged and counted as
// ignored. Compose redeploys send nothing (services/compose.ts:344-426):
// shipbot's own job notice covers them.
func parseDokploy(body []byte) (Event, error) {
	var d dokployNotice
	if err := decode(body, &d); err != nil {
		return Event{}, err
	}
	project := strings.Trim(d.ProjectName+"/"+d.ApplicationName, "/")
	id := d.Timestamp
	if id == "" {
		sum := sha256.Sum256(body)
		id = hex.EncodeToString(sum[:8])
	}
	switch {
	case d.Type == "build" || (d.Type == "" && d.ApplicationType != "" && d.DatabaseName == ""):
		// Older Dokploys sent builds without a type.
	case (d.DatabaseName != "" || d.VolumeName != "") && d.ProjectName != "":
		e := Event{Kind: KindBackup, Project: project, ID: id, CommitTitle: d.Title, Error: d.ErrorMessage,
			Time: parseTime(d.Timestamp)}
		switch d.Status {
		case "success":
			e.Status = StatusSuccess
		case "error":
			e.Status = StatusFailed
		default:
			return Event{}, fmt.Errorf("%w: Dokploy backup notice with status %q", ErrIgnored, d.Status)
		}
		what := d.DatabaseName
		if what == "" {
			what = "volume " + d.VolumeName
		} else if d.DatabaseType != "" {
			what = d.DatabaseType + " " + what
		}
		e.Environment = what
		return e, nil
	default:
		kind := d.Type
		if d.AlertType != "" {
			kind = d.AlertType
		}
		if kind == "" {
			kind = d.Title
		}
		return Event{}, fmt.Errorf("%w: Dokploy %q notice", ErrIgnored, kind)
	}
	e := Event{Kind: KindDeployment, Project: project, URL: d.BuildLink, CommitTitle: firstLine(d.Message), Error: d.ErrorMessage,
		Time: parseTime(d.Timestamp), Environment: d.ApplicationType, ID: id}
	if e.CommitTitle == "" {
		e.CommitTitle = d.Title
	}
	switch strings.ToLower(d.Status) {
	case "success", "done", "succeeded":
		e.Status = StatusSuccess
	case "error", "failed", "failure":
		e.Status = StatusFailed
	case "running", "started":
		e.Status = StatusRunning
	case "cancelled", "canceled":
		e.Status = StatusCancelled
	case "":
		if d.ErrorMessage != "" {
			e.Status = StatusFailed
		} else {
			e.Status = StatusSuccess
		}
	default:
		return Event{}, fmt.Errorf("status %q from Dokploy is not one shipbot knows", d.Status)
	}
	return e, nil
}
