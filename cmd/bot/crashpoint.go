package main

import (
	"context"
	"os"
	"syscall"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// crashEnv names a deploy step at whose start the process kills itself with
// SIGKILL: the crash tests use it to stop shipbot mid-deploy exactly where
// they want, as a power cut would. Unset in normal use.
const crashEnv = "SHIPBOT_CRASH_AT_STEP"

func withCrashPoint(d deploy.Driver) deploy.Driver {
	step := os.Getenv(crashEnv)
	if step == "" {
		return d
	}
	return crashDriver{Driver: d, step: step}
}

type crashDriver struct {
	deploy.Driver
	step string
}

// Unwrap lets the engine find the wrapped driver's capabilities (a Dokploy
// driver's Resumer, StartStopper, Backuper).
func (c crashDriver) Unwrap() deploy.Driver { return c.Driver }

var _ deploy.Wrapper = crashDriver{}

func (c crashDriver) Deploy(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	return c.Driver.Deploy(ctx, req, crashProgress{Progress: p, step: c.step})
}

type crashProgress struct {
	deploy.Progress
	step string
}

func (c crashProgress) Step(name string, state deploy.StepState, detail string) {
	c.Progress.Step(name, state, detail)
	if name == c.step && state == deploy.StepRunning {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; never continue the deploy
	}
}

// crashAfterSendEnv makes the process kill itself right after the relay's
// first successful send, before the outbox row is marked: the crash test
// of at-least-once delivery.
const crashAfterSendEnv = "SHIPBOT_CRASH_AFTER_SEND"

func crashAfterSend() func(notify.Delivery) {
	if os.Getenv(crashAfterSendEnv) == "" {
		return nil
	}
	return func(notify.Delivery) { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
}
