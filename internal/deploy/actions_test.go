package deploy

import "testing"

// Every action is one entry: a noun, a body, and the facts recovery and the
// cards ask about.
func TestEveryActionHasASpec(t *testing.T) {
	all := []Action{ActionDeploy, ActionRollback, ActionStop, ActionStart, ActionBackup, ActionVerify, ActionRestore}
	if len(actions) != len(all) {
		t.Fatalf("%d action specs for %d actions", len(actions), len(all))
	}
	for _, a := range all {
		s, ok := actions[a]
		if !ok || s.noun == "" || s.run == nil {
			t.Errorf("%s: spec %+v", a, s)
		}
		if s.switches && s.onBackup {
			t.Errorf("%s both switches releases and names a backup", a)
		}
	}
	if Action("frob").Noun() != "Job" || Action("frob").Switches() {
		t.Error("an unknown action reads as a known one")
	}
	if !ActionRollback.Switches() || ActionRestore.Switches() || !ActionVerify.OnBackup() || ActionDeploy.OnBackup() {
		t.Error("action facts")
	}
}

// Each action names its target in its own field, and only a switching job
// that ended well says what it left live: never a backup id.
func TestTargetAndLeftLive(t *testing.T) {
	cases := []struct {
		j            Job
		target, live string
	}{
		{Job{Action: ActionDeploy, Release: "r2", FromRelease: "r1", State: Succeeded}, "r2", "r2"},
		{Job{Action: ActionDeploy, Release: "r2", FromRelease: "r1", State: RolledBack}, "r2", "r1"},
		{Job{Action: ActionDeploy, Release: "r2", FromRelease: "r1", State: Failed}, "r2", ""},
		{Job{Action: ActionRollback, RollbackTo: "r1", FromRelease: "r2", BackupID: "b1", State: Succeeded}, "r1", "r1"},
		{Job{Action: ActionBackup, Backup: "b2", State: Succeeded}, "b2", ""},
		{Job{Action: ActionRestore, Backup: "b2", BackupID: "b3", State: Succeeded}, "b2", ""},
		{Job{Action: ActionStop, State: Succeeded}, "", ""},
	}
	for _, c := range cases {
		if got := c.j.Target(); got != c.target {
			t.Errorf("%s %s: Target %q, want %q", c.j.Action, c.j.State, got, c.target)
		}
		if got := c.j.LeftLive(); got != c.live {
			t.Errorf("%s %s: LeftLive %q, want %q", c.j.Action, c.j.State, got, c.live)
		}
	}
}
