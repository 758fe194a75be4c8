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
