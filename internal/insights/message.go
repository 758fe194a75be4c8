package insights

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

// Scope names what q covers: "helpdesk/production", "helpdesk", "all apps".
func (q Query) Scope() string {
	switch {
	case q.App != "" && q.Env != "":
		return q.App + "/" + q.Env
	case q.App != "":
		return q.App
	}
	return "all apps"
}

// Message answers q: the figures as a chat message with the chart as a
// PNG attachment (when the window holds any deploy and a Charter is set).
// title "" is "Delivery: SCOPE, last N days".
func (s *Service) Message(ctx context.Context, q Query, title string) (notify.Message, *Report, error) {
	r, err := s.Stats(ctx, q)
	if err != nil {
		return notify.Message{}, nil, err
	}
	if title == "" {
		title = fmt.Sprintf("Delivery: %s, last %d days", q.Scope(), r.Days)
	}
	m := Render(r, title)
	if s.chart != nil && len(r.Envs) > 0 {
		png, err := s.chart(r, "Deploys per day: "+q.Scope())
		if err != nil {
			// The figures are worth having without their picture.
			m.Text += "\n(the chart could not be drawn: " + err.Error() + ")"
		} else {
			m.Attachment = &notify.Attachment{Name: fmt.Sprintf("delivery-%s-%dd.png", strings.ReplaceAll(q.Scope(), "/", "-"), r.Days),
				Content: png, Type: notify.MediaPNG}
		}
	}
	return m, r, nil
}

// Render lays a report out as a chat message: per app/env a monospace
// table of this window's figures with the window before in brackets,
// narrow enough for a phone.
func Render(r *Report, title string) notify.Message {
	last := r.To.Add(-time.Nanosecond)
	m := notify.Message{Title: title, Style: notify.StyleInfo,
		Text: fmt.Sprintf("%s – %s (UTC); the %d days before in brackets. Definitions: README, \"Delivery insights\".",
			r.From.Format("Jan 2"), last.Format("Jan 2"), r.Days)}
	if len(r.Envs) == 0 {
		m.Text = fmt.Sprintf("%s – %s (UTC): no deploy or rollback recorded in these %d days or the %d before.",
			r.From.Format("Jan 2"), last.Format("Jan 2"), r.Days, r.Days)
		return m
	}
	for i, e := range r.Envs {
		if i > 0 {
			m.Code = append(m.Code, "")
		}
		c, p := e.Current, e.Previous
		row := func(name, now, before string) {
			m.Code = append(m.Code, fmt.Sprintf("  %-15s %s (%s)", name, now, before))
		}
		m.Code = append(m.Code, e.App+"/"+e.Env)
		row("deploys", fmt.Sprint(c.Deploys), fmt.Sprint(p.Deploys))
		row("succeeded/day", perDay(c), perDay(p))
		row("lead time med", lead(c, c.LeadTime.Median), lead(p, p.LeadTime.Median))
		row("lead time p90", lead(c, c.LeadTime.P90), lead(p, p.LeadTime.P90))
		if c.LeadTime.Unknown+p.LeadTime.Unknown > 0 {
			row("lead unknown", fmt.Sprint(c.LeadTime.Unknown), fmt.Sprint(p.LeadTime.Unknown))
		}
		row("change failure", rate(c), rate(p))
		row("restore med", spreadMedian(c.TimeToRestore), spreadMedian(p.TimeToRestore))
		if c.TimeToRestore.Unknown+p.TimeToRestore.Unknown > 0 {
			row("not restored", fmt.Sprint(c.TimeToRestore.Unknown), fmt.Sprint(p.TimeToRestore.Unknown))
		}
		row("approval med", spreadMedian(c.ApprovalWait), spreadMedian(p.ApprovalWait))
		m.Code = append(m.Code, fmt.Sprintf("  %-15s %s", "failing steps", counts(c.FailingSteps)),
			fmt.Sprintf("  %-15s %s", "deployers", counts(c.Deployers)))
	}
	return m
}

func perDay(f Figures) string { return fmt.Sprintf("%.2f", f.DeploysPerDay) }

// lead is a lead time, "unknown" when successful deploys had none known,
// "–" without successful deploys.
func lead(f Figures, d Duration) string {
	switch {
	case f.LeadTime.N > 0:
		return FormatDuration(time.Duration(d))
	case f.Successful > 0:
		return "unknown"
	}
	return "–"
}

func rate(f Figures) string {
	if f.Deploys == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%% %d/%d", f.ChangeFailureRate*100, f.ChangeFailures, f.Deploys)
}

func spreadMedian(s Spread) string {
	if s.N == 0 {
		return "–"
	}
	return FormatDuration(time.Duration(s.Median))
}

func counts(cs []Count) string {
	if len(cs) == 0 {
		return "–"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s %d", c.Name, c.N)
	}
	return strings.Join(parts, ", ")
}

// FormatDuration is short and rounded for a table: 45s, 12m, 4h, 1h15m,
// 2d, 1d6h.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	case d < 24*time.Hour:
		d = d.Round(time.Minute)
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%02dm", h, m)
	}
	d = d.Round(time.Hour)
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}
