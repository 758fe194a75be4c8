// Package metrics is shipbot's Prometheus instrumentation: what the
// operators of a deploy bot page on (denials spiking, webhooks refused,
// the notification outbox backing up, deliveries slowing down), served at
// /metrics from the bot's one HTTP listener.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// Source reads the numbers that live in the database, at scrape time.
type Source interface {
	OutboxDepth(ctx context.Context) (pending, dead int, err error)
	JobCounts(ctx context.Context) (map[string]int, error)
}

// Metrics holds shipbot's collectors on a registry of its own (no global state).
type Metrics struct {
	reg       *prometheus.Registry
	commands  *prometheus.CounterVec
	webhooks  *prometheus.CounterVec
	delivered *prometheus.HistogramVec
}

// New registers the collectors; src may be nil (no database gauges).
func New(src Source, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shipbot_commands_total",
			Help: "Chat requests handled, by command and result (ok or denied)."}, []string{"command", "result"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shipbot_webhook_events_total",
			Help: "Webhook deliveries, by source and result (accepted, duplicate, ignored, unrouted, stale, unverified, invalid, error)."},
			[]string{"source", "result"}),
		delivered: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shipbot_delivery_latency_seconds",
			Help:    "From an outbox row being written to the chat platform accepting it, by result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"result"}),
	}
	m.reg.MustRegister(m.commands, m.webhooks, m.delivered,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src != nil {
		m.reg.MustRegister(&dbCollector{src: src, log: log})
	}
	return m
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Command counts one chat request.
func (m *Metrics) Command(name string, denied bool) {
	if name == "" {
		name = "none"
	}
	result := "ok"
	if denied {
		result = "denied"
	}
	m.commands.WithLabelValues(name, result).Inc()
}

// Webhook counts one webhook delivery.
func (m *Metrics) Webhook(source, result string) { m.webhooks.WithLabelValues(source, result).Inc() }

// Delivery observes one outbox attempt; it has notify.RelayOptions.Observe's shape.
func (m *Metrics) Delivery(_ notify.Delivery, latency time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.delivered.WithLabelValues(result).Observe(latency.Seconds())
}

var (
	outboxDesc = prometheus.NewDesc("shipbot_outbox_depth", "Outbox rows waiting for delivery (state=pending) or given up (state=dead).",
		[]string{"state"}, nil)
	jobsDesc = prometheus.NewDesc("shipbot_jobs", "Jobs in the database, by state.", []string{"state"}, nil)

	backupLastDesc = prometheus.NewDesc("shipbot_backup_last_success_timestamp_seconds",
		"When the newest good backup of an env was taken (alert when it is too old).", []string{"app", "env"}, nil)
	backupsDesc = prometheus.NewDesc("shipbot_backups", "Backup records, by env and state (ok, failed, pruned).",
		[]string{"app", "env", "state"}, nil)
)

// BackupSource is a Source that also sums up backups.
type BackupSource interface {
	BackupStats(ctx context.Context) ([]deploy.BackupStat, error)
}

// dbCollector reads gauges from the database when scraped, so they are
// right after a restart and never drift from the truth.
type dbCollector struct {
	src Source
	log *slog.Logger
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxDesc
	ch <- jobsDesc
	if _, ok := c.src.(BackupSource); ok {
		ch <- backupLastDesc
		ch <- backupsDesc
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if pending, dead, err := c.src.OutboxDepth(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(pending), "pending")
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(dead), "dead")
	} else if c.log != nil {
		c.log.Warn("metrics: outbox depth", "err", err)
	}
	if counts, err := c.src.JobCounts(ctx); err == nil {
		for state, n := range counts {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), state)
		}
	} else if c.log != nil {
		c.log.Warn("metrics: job counts", "err", err)
	}
	bs, ok := c.src.(BackupSource)
	if !ok {
		return
	}
	stats, err := bs.BackupStats(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("metrics: backups", "err", err)
		}
		return
	}
	for _, st := range stats {
		if !st.LastOK.IsZero() {
			ch <- prometheus.MustNewConstMetric(backupLastDesc, prometheus.GaugeValue, float64(st.LastOK.Unix()), st.App, st.Env)
		}
		for state, n := range st.States {
			ch <- prometheus.MustNewConstMetric(backupsDesc, prometheus.GaugeValue, float64(n), st.App, st.Env, string(state))
		}
	}
}
