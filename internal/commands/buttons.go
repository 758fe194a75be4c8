package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// boundData is what the pressed button does, if it was pressed where it was
// posted: shipbot's buttons carry only a random id, and the chat and message
// it was bound to must be the ones the press came from.
func (d *Dispatcher) boundData(ctx context.Context, req Request) (string, error) {
	if d.buttons == nil {
		return req.Action, nil
	}
	forged := errors.New("this button is not one of shipbot's")
	id, ok := strings.CutPrefix(req.Action, notify.ButtonPrefix)
	if !ok || len(id) > 64 {
		return "", forged
	}
	b, err := d.buttons.Button(ctx, id)
	if errors.Is(err, notify.ErrNoButton) {
		return "", forged
	}
	if err != nil {
		return "", fmt.Errorf("this button cannot be checked now (%v); try again", err)
	}
	if b.Chat != notify.ChatKey(req.Chat) {
		return "", errors.New("this button belongs to another chat")
	}
	// The shell has one terminal and no message ids (and a typist can press
	// a button before the binder has recorded its message); elsewhere a
	// button is good only on its own message.
	if req.Platform != "shell" && (b.Message == "" || req.Message != b.Message) {
		return "", errors.New("this button belongs to another message")
	}
	return b.Data, nil
}

// buttonCommand turns button data back into a command. Data is only ever a
// verb and an opaque token; whatever it names is looked up again and the
// presser's own rights are checked like for typed commands.
func (d *Dispatcher) buttonCommand(ctx context.Context, data string) (string, int64, error) {
	forged := errors.New("this button is not one of shipbot's")
	verb, token, ok := strings.Cut(data, ":")
	if !ok || len(data) > 64 {
		return "", 0, forged
	}
	switch verb {
	case notify.ButtonApprove, notify.ButtonDeny:
		if !approvalIDPattern.MatchString(token) {
			return "", 0, forged
		}
		return "/" + verb + " " + token, 0, nil
	case notify.ButtonCancel, notify.ButtonUnlock, notify.ButtonRollback:
		id, err := strconv.ParseInt(token, 10, 64)
		if err != nil || id < 1 {
			return "", 0, forged
		}
		if verb == notify.ButtonCancel {
			return "/cancel " + token, 0, nil
		}
		j, err := d.store.Job(ctx, id)
		if err != nil {
			return "", 0, errors.New("this button refers to no job")
		}
		return "/" + verb + " " + j.App + " " + j.Env, id, nil
	case ButtonExtendLock, ButtonUnlockLock:
		cmd, err := d.lockButtonCommand(ctx, verb, token)
		return cmd, 0, err
	case notify.ButtonDeploy:
		// "deploy:APP:ENV:REF" from a green pipeline: the same as typing
		// /deploy, so it meets the same parser, policy and approval.
		parts := strings.Split(token, ":")
		if len(parts) != 3 || !deploy.NamePattern.MatchString(parts[0]) || !deploy.NamePattern.MatchString(parts[1]) ||
			deploy.ValidateRef(parts[2]) != nil {
			return "", 0, forged
		}
		return "/deploy " + strings.Join(parts, " "), 0, nil
	}
	return "", 0, forged
}
