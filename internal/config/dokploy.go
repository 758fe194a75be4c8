package config

import (
	"net/url"
	"regexp"
	"slices"

	"github.com/shipbot/shipbot/internal/audit"
)

// Dokploy is how the dokploy driver reaches the env's service.
type Dokploy struct {
	BaseURL       string       // https://HOST/api
	APIKey        audit.Secret // write ${VAR}
	ComposeID     string       // exactly one of ComposeID and ApplicationID
	ApplicationID string
	// SetBranch lets /deploy APP ENV REF set the service's git branch
	// field to REF first, and a compose rollback set it to the release's
	// recorded branch or tag and deploy it.
	SetBranch     bool
	BackupID      string // the Dokploy backup /backup runs
	PollInterval  Duration
	PollDeadline  Duration
	BackupTimeout Duration
	// QueueGrace is how long a deploy may stay invisible while Dokploy's
	// queueList does not show it waiting (always, before v0.28.3);
	// default PollDeadline.
	QueueGrace Duration
	// LogsSince bounds /logs to lines newer than this; 0 = only the count.
	LogsSince Duration
}

// dokployID is what Dokploy's ids look like (nanoid: letters, digits, _ -).
var dokployID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateDokploy checks a dokploy env: Dokploy builds and runs the app, so
// path, fetch and commands do not apply.
func (d *decoder) validateDokploy(c *Config, key string, e Env) {
	dk := e.Dokploy
	if dk == nil {
		d.fail(d.lineOf(key+".dokploy"), key+".dokploy", "the dokploy driver needs a dokploy block with base_url, api_key and compose_id or application_id")
		return
	}
	k := key + ".dokploy"
	if d.brokenUnder(k) {
		return
	}
	if u, err := url.Parse(dk.BaseURL); dk.BaseURL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		d.fail(d.lineOf(k+".base_url"), k+".base_url", "must be Dokploy's API URL, like https://dokploy.example.com/api")
	} else if u.Scheme == "http" && !slices.Contains([]string{"127.0.0.1", "localhost", "::1"}, u.Hostname()) {
		d.fail(d.lineOf(k+".base_url"), k+".base_url", "must use https: the API key would travel in clear")
	}
	if dk.APIKey.IsZero() {
		d.fail(d.lineOf(k), k+".api_key", "is required (write ${DOKPLOY_API_KEY})")
	}
	switch {
	case dk.ComposeID == "" && dk.ApplicationID == "":
		d.fail(d.lineOf(k), k, "needs compose_id or application_id")
	case dk.ComposeID != "" && dk.ApplicationID != "":
		d.fail(d.lineOf(k), k, "takes compose_id or application_id, not both")
	}
	for name, id := range map[string]string{"compose_id": dk.ComposeID, "application_id": dk.ApplicationID, "backup_id": dk.BackupID} {
		if id != "" && !dokployID.MatchString(id) {
			d.fail(d.lineOf(k+"."+name), k+"."+name, "%q is not a Dokploy id", id)
		}
	}
	d.positive(k+".poll_interval", dk.PollInterval)
	d.positive(k+".poll_deadline", dk.PollDeadline)
	d.positive(k+".backup_timeout", dk.BackupTimeout)
	d.positive(k+".queue_grace", dk.QueueGrace)
	for _, f := range []struct {
		name string
		set  bool
	}{{"ssh", e.SSH != nil}, {"path", e.Path != ""}, {"fetch", e.Fetch != (Fetch{})}, {"build", len(e.Build) > 0},
		{"migrate", len(e.Migrate) > 0}, {"restart", len(e.Restart) > 0}, {"shared", len(e.Shared) > 0},
		{"backup", e.Backup != nil}, {"health.command", len(e.Health.Command) > 0}} {
		if f.set {
			d.fail(d.lineOf(key+"."+f.name), key+"."+f.name, "does not apply to the dokploy driver (Dokploy builds and runs the app; backups use dokploy.backup_id)")
		}
	}
	if e.BackupBeforeDeploy && dk.BackupID == "" {
		d.fail(d.lineOf(key+".backup_before_deploy"), key+".backup_before_deploy", "needs dokploy.backup_id")
	}
	if e.Health.URL != "" {
		e.Health.validate(d, key+".health")
	}
	e.Approval.validate(d, c, key)
}
