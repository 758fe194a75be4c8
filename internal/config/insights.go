package config

import (
	"fmt"
	"slices"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/shipbot/shipbot/internal/notify"
)

// Insights configures delivery insights (/stats works without it).
type Insights struct {
	// Digest posts the weekly delivery summary with its chart; nil: none.
	Digest *Digest
}

// Digest is the scheduled delivery summary: the 7 whole days (UTC) before
// the day it fires, beside the 7 before those.
type Digest struct {
	Schedule string   // cron spec, e.g. "0 9 * * MON"
	Chats    []string // "telegram:-100…", "slack:C…", "shell:terminal"
}

func (d *decoder) insights(n *yaml.Node, path string, in *Insights) {
	d.object(n, path, fields{
		"digest": func(v *yaml.Node, k string) {
			g := &Digest{}
			d.object(v, k, fields{
				"schedule": func(v *yaml.Node, k string) { d.str(v, k, &g.Schedule) },
				"chats":    func(v *yaml.Node, k string) { d.strs(v, k, &g.Chats) },
			})
			in.Digest = g
		},
	})
}

func (d *decoder) validateInsights(c *Config) {
	g := c.Insights.Digest
	if g == nil {
		return
	}
	const k = "insights.digest"
	if g.Schedule == "" {
		d.fail(d.lineOf(k), k+".schedule", "is required (a cron spec such as \"0 9 * * MON\")")
	} else if _, err := cron.ParseStandard(g.Schedule); err != nil {
		d.fail(d.lineOf(k+".schedule"), k+".schedule", "is not a cron spec (\"0 9 * * MON\", \"@weekly\"): %v", err)
	}
	if len(g.Chats) == 0 {
		d.fail(d.lineOf(k), k+".chats", "is required: the digest must say where it goes")
	}
	for i, ch := range g.Chats {
		cp, err := notify.ParseChannel(ch)
		if err == nil && !slices.Contains(platforms, cp.Platform) {
			err = fmt.Errorf("unknown platform %q", cp.Platform)
		}
		if err != nil {
			key := index(k+".chats", i)
			d.fail(d.lineOf(key), key, "%v (write telegram:CHAT[/TOPIC], slack:CHANNEL or shell:NAME)", err)
		}
	}
}
