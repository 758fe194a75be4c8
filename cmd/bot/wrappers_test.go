package main

import (
	"context"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/backup"
)

// capable is a driver with optional capabilities, as Dokploy's.
type capable struct{ deploy.Driver }

func (capable) Stop(context.Context, deploy.Progress) (deploy.Result, error) {
	return deploy.Result{}, nil
}
func (capable) Start(context.Context, deploy.Progress) (deploy.Result, error) {
	return deploy.Result{}, nil
}
func (capable) Resume(context.Context, deploy.DeployRequest, deploy.Progress) (deploy.Result, error) {
	return deploy.Result{}, nil
}

// cmd/bot's wrappers (the backup block, the crash point) never hide what the
// wrapped driver can do: the engine finds it through them.
func TestWrappersKeepTheDriversCapabilities(t *testing.T) {
	for name, d := range map[string]deploy.Driver{
		"crash point": crashDriver{Driver: capable{}, step: "build"},
		"backups":     backedUp{Driver: capable{}, Runner: &backup.Runner{}},
		"both":        backedUp{Driver: crashDriver{Driver: capable{}}, Runner: &backup.Runner{}},
	} {
		if _, ok := deploy.As[deploy.StartStopper](d); !ok {
			t.Errorf("%s hides StartStopper", name)
		}
		if _, ok := deploy.As[deploy.Resumer](d); !ok {
			t.Errorf("%s hides Resumer", name)
		}
	}
	if _, ok := deploy.As[deploy.Restorer](backedUp{Driver: capable{}, Runner: &backup.Runner{}}); !ok {
		t.Error("the backup wrapper lost its own Restorer")
	}
	if _, ok := deploy.As[deploy.Restorer](crashDriver{Driver: capable{}}); ok {
		t.Error("a capability appeared from nowhere")
	}
}
