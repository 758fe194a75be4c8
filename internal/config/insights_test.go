package config

import (
	"strings"
	"testing"
)

const insightsBlock = `
insights:
  digest:
    schedule: "0 9 * * MON"
    chats: ["telegram:-100123/7", "slack:C0123ABCD"]
`

func TestInsightsConfig(t *testing.T) {
	c, err := Parse([]byte(base+insightsBlock), "t.yaml", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Insights.Digest
	if g == nil || g.Schedule != "0 9 * * MON" || len(g.Chats) != 2 || g.Chats[1] != "slack:C0123ABCD" {
		t.Fatalf("digest %+v", g)
	}
	if !strings.Contains(c.Summary(), "insights: delivery digest \"0 9 * * MON\" (UTC) to telegram:-100123/7, slack:C0123ABCD\n") {
		t.Fatalf("summary:\n%s", c.Summary())
	}
	c, err = Parse([]byte(base), "t.yaml", envOf(nil))
	if err != nil || c.Insights.Digest != nil {
		t.Fatalf("no insights block: %+v %v", c.Insights, err)
	}
}

func TestInsightsConfigErrors(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{`"0 9 * * MON"`, `"0 9 * * MONDAY"`, "insights.digest.schedule: is not a cron spec"},
		{`schedule: "0 9 * * MON"`, `schedul: "0 9 * * MON"`, "insights.digest.schedul"},
		{`"slack:C0123ABCD"`, `"irc:#ops"`, `insights.digest.chats[1]: unknown platform "irc"`},
		{`chats: ["telegram:-100123/7", "slack:C0123ABCD"]`, `chats: []`, "insights.digest.chats: is required"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(base+strings.Replace(insightsBlock, tc.from, tc.to, 1)), "t.yaml", envOf(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: err %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}
