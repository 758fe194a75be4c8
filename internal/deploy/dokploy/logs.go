package dokploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy"
)

// maxTail is the most lines Dokploy's readLogs procedures take
// (routers/application.ts:1116, compose.ts:1218, deployment.ts:242).
const maxTail = 10000

func (d *Driver) tail(lines int) string {
	if lines < 1 {
		lines = 1
	}
	if lines > maxTail {
		lines = maxTail
	}
	return strconv.Itoa(lines)
}

// since is readLogs' since: "all" or a count of seconds (^(all|\d+[smhd])$).
func (d *Driver) since() string {
	if d.LogSince <= 0 {
		return "all"
	}
	return strconv.Itoa(int(d.LogSince.Seconds())) + "s"
}

// Logs implements deploy.Driver: the service's container logs over HTTP
// (since v0.29.0). An application's come from application.readLogs; a
// compose's from compose.readLogs for each container
// docker.getContainersByAppNameMatch lists, each line prefixed with the
// container's name.
func (d *Driver) Logs(ctx context.Context, lines int) (deploy.Logs, error) {
	svc, err := d.service(ctx)
	if err != nil {
		return deploy.Logs{}, err
	}
	var out []string
	if d.t.ApplicationID != "" {
		var text string
		err = d.c.Get(ctx, "application.readLogs", url.Values{"applicationId": {d.t.ApplicationID},
			"tail": {d.tail(lines)}, "since": {d.since()}}, &text)
		out = splitLines(text)
	} else {
		out, err = d.composeLogs(ctx, svc, lines)
	}
	var api *APIError
	if errors.As(err, &api) && api.NoProcedure() {
		return d.deploymentLines(ctx, lines, err.Error()+"; container logs are in Dokploy's UI")
	}
	if err != nil {
		return deploy.Logs{}, err
	}
	return d.bound(out, lines), nil
}

func (d *Driver) composeLogs(ctx context.Context, svc service, lines int) ([]string, error) {
	appType := svc.ComposeType
	if appType == "" {
		appType = "docker-compose"
	}
	q := url.Values{"appName": {svc.AppName}, "appType": {appType}}
	if svc.ServerID != nil && *svc.ServerID != "" {
		q.Set("serverId", *svc.ServerID)
	}
	var cs []struct {
		ContainerID string `json:"containerId"`
		Name        string `json:"name"`
		State       string `json:"state"`
	}
	if err := d.c.Get(ctx, "docker.getContainersByAppNameMatch", q, &cs); err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return []string{fmt.Sprintf("no containers of compose %s (%s) on its Dokploy server", orDash(svc.Name), svc.AppName)}, nil
	}
	// Each container gets an equal share of the lines, so one noisy
	// container does not hide the others.
	per := lines / len(cs)
	if per < 1 {
		per = 1
	}
	var out []string
	for _, c := range cs {
		var text string
		err := d.c.Get(ctx, "compose.readLogs", url.Values{"composeId": {d.t.ComposeID}, "containerId": {c.ContainerID},
			"tail": {d.tail(per)}, "since": {d.since()}}, &text)
		if err != nil {
			return nil, err
		}
		for _, l := range splitLines(text) {
			out = append(out, c.Name+" | "+l)
		}
	}
	return out, nil
}

// BuildLogs implements deploy.BuildLogger: the last deployment's build log
// from deployment.readLogs (since v0.29.6).
func (d *Driver) BuildLogs(ctx context.Context, lines int) (deploy.Logs, error) {
	list, err := d.deployments(ctx)
	if err != nil {
		return deploy.Logs{}, err
	}
	if len(list) == 0 {
		return deploy.Logs{}, &deploy.Refusal{Msg: "Dokploy lists no deployment of this " + d.kind() + " yet"}
	}
	dp := list[0]
	var text string
	if err := d.c.Get(ctx, "deployment.readLogs", url.Values{"deploymentId": {dp.DeploymentID}, "tail": {d.tail(lines)}}, &text); err != nil {
		return deploy.Logs{}, err
	}
	head := fmt.Sprintf("deployment %s (%s, %s)", dp.DeploymentID, dp.Status, dp.CreatedAt)
	return d.bound(append([]string{head}, splitLines(text)...), lines+1), nil
}

// deploymentLines is what an older Dokploy offers: the deployments' status.
func (d *Driver) deploymentLines(ctx context.Context, lines int, why string) (deploy.Logs, error) {
	list, err := d.deployments(ctx)
	if err != nil {
		return deploy.Logs{}, err
	}
	byID, _ := d.pins(ctx)
	var out []string
	for i := len(list) - 1; i >= 0; i-- {
		dp := list[i]
		out = append(out, fmt.Sprintf("%s  %s  %s  %s  %s", dp.CreatedAt, dp.DeploymentID, dp.Status, releaseOf(dp, byID), dp.Title))
	}
	out = append(out, why)
	return d.bound(out, lines), nil
}

// bound keeps the last lines lines within LogMaxBytes.
func (d *Driver) bound(all []string, lines int) deploy.Logs {
	max := d.LogMaxBytes
	if max <= 0 {
		max = 64 << 10
	}
	l := deploy.Logs{Lines: all}
	if len(all) > lines {
		l.Lines, l.Truncated = all[len(all)-lines:], true
	}
	size := 0
	for i := len(l.Lines) - 1; i >= 0; i-- {
		size += len(l.Lines[i]) + 1
		if size > max {
			l.Lines, l.Truncated = l.Lines[i+1:], true
			break
		}
	}
	return l
}

func splitLines(text string) []string {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
