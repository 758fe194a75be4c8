package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
)

// glGreen is a GitLab Pipeline Hook of a finished push pipeline
// (https://docs.gitlab.com/user/project/integrations/webhook_events/#pipeline-events).
func glGreen(id int, ref, sha string) []byte {
	return []byte(fmt.Sprintf(`{"object_kind":"pipeline","object_attributes":{"id":%d,"ref":%q,"sha":%q,"status":"success","source":"push","created_at":"2026-11-22 10:00:02 UTC","duration":63},"project":{"path_with_namespace":"acme/web","web_url":"https://gitlab.example.com/acme/web"},"commit":{"message":"Fix login\n","author":{"name":"Alice"}},"builds":[]}`,
		id, ref, sha))
}

const (
	shaA = "aaaaaaa396a2c0f828686f14fac9b80b780504f2"
	shaB = "bbbbbbb396a2c0f828686f14fac9b80b780504f2"
	shaC = "ccccccc396a2c0f828686f14fac9b80b780504f2"
	shaD = "ddddddd396a2c0f828686f14fac9b80b780504f2"
	shaE = "eeeeeee396a2c0f828686f14fac9b80b780504f2"
)

// message waits for an ops chat message whose text contains all of parts.
func message(t *testing.T, e *testEnv, tg *telegramtest.Server, what string, parts ...string) telegramtest.Message {
	t.Helper()
	var found telegramtest.Message
	waitFor(t, what, func() bool {
		for _, m := range tg.Messages(opsChat) {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(m.Text+e.resolveButtons(m.Markup), p)
			}
			if ok {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

func jobState(t *testing.T, addr string, job int64) (string, string) {
	t.Helper()
	code, body := call(t, addr, "GET", fmt.Sprintf("/api/v1/jobs/%d", job), ciToken, "", "")
	if code != 200 {
		return fmt.Sprint(code), ""
	}
	ref, _ := body["ref"].(string)
	return body["state"].(string), ref
}

func waitJobState(t *testing.T, addr string, job int64, want, wantRef string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("job #%d %s", job, want), func() bool {
		st, ref := jobState(t, addr, job)
		return st == want && ref == wantRef
	})
}

func TestBinaryAutoDeploy(t *testing.T) {
	t.Parallel()
	e, tg, addr := apiEnv(t, true)
	p := e.startAPIBot()
	alice, bob := telegramtest.User(100, "alice"), telegramtest.User(200, "bob")
	hook := func(uuid string, body []byte) {
		t.Helper()
		if code := postHook(t, addr, glToken, uuid, body); code != http.StatusOK {
			t.Fatalf("webhook %s: %d", uuid, code)
		}
	}

	// A green main pipeline deploys its SHA to staging as ci; the deploy
	// notice threads under the pipeline's message.
	hook("a1", glGreen(51, "main", shaA))
	waitJobState(t, addr, 1, "succeeded", shaA)
	card := message(t, e, tg, "pipeline 51's card", "#51")
	notice := message(t, e, tg, "the deploy notice", "(job #1)", "succeeded")
	if notice.ReplyTo != card.ID {
		t.Fatalf("deploy notice replies to %d, want the pipeline's message %d", notice.ReplyTo, card.ID)
	}
	// Redelivered (same delivery id, and a new one), then again after a restart.
	hook("a1", glGreen(51, "main", shaA))
	hook("a2", glGreen(51, "main", shaA))
	stopBot(t, p)
	p = e.startAPIBot()
	hook("a3", glGreen(51, "main", shaA))

	// A locked env skips with a notice in the pipeline's thread.
	tg.Push(tg.NewMessage(telegramtest.Group(opsChat), 0, alice, "/lock demo staging release freeze"))
	waitFor(t, "the lock", func() bool {
		_, body := call(t, addr, "GET", "/api/v1/apps", ciToken, "", "")
		return strings.Contains(fmt.Sprint(body["apps"]), "release freeze")
	})
	hook("b1", glGreen(52, "main", shaB))
	card52 := message(t, e, tg, "pipeline 52's card", "#52")
	skip := message(t, e, tg, "the skip notice", "skipped: the env is locked", "release freeze")
	if skip.ReplyTo != card52.ID {
		t.Fatalf("skip notice replies to %d, want pipeline 52's message %d", skip.ReplyTo, card52.ID)
	}

	// Production needs approval: the auto-deploy posts an approval card;
	// a newer green pipeline supersedes the one still awaiting approval.
	hook("c1", glGreen(60, "release", shaC))
	waitJobState(t, addr, 2, "awaiting_approval", shaC)
	message(t, e, tg, "job 2's approval card", "approve:")
	hook("d1", glGreen(61, "release", shaD))
	waitJobState(t, addr, 3, "awaiting_approval", shaD)
	waitJobState(t, addr, 2, "cancelled", shaC)
	// An older pipeline arriving late never deploys over a newer one.
	hook("e1", glGreen(59, "release", shaE))
	hook("c2", glGreen(60, "release", shaC))
	approval := message(t, e, tg, "job 3's approval card", "(job #3)", "approve:")
	press, _ := tg.NewPress(bob, opsChat, approval.ID, tg.ButtonData(opsChat, approval.ID, "Approve"), true)
	tg.Push(press)
	waitJobState(t, addr, 3, "succeeded", shaD)
	// Nothing else was asked for: the late pipeline 59 made no job 4.
	if st, _ := jobState(t, addr, 4); st != "404" {
		t.Fatalf("job 4 exists (%s): an older pipeline deployed", st)
	}
	stopBot(t, p)

	// Audit: one deploy intent per pipeline that deployed, from auto:ci;
	// the locked one is a denial; none for the redeliveries or the late one.
	intents := map[string]int{}
	var denied bool
	for _, ev := range auditRows(e, "auto:ci") {
		if ev.Actor != "ci" || ev.Via != "auto" || !strings.HasPrefix(ev.Chat, "auto:gitlab-") {
			t.Fatalf("an auto-deploy row not marked as such: %+v", ev)
		}
		if ev.Kind == audit.KindIntent && ev.Command == "deploy" {
			intents[strings.Join(ev.Args, " ")]++
		}
		if ev.Kind == audit.KindDenial && ev.Command == "deploy" && strings.Contains(ev.Outcome, "locked") && ev.Chat == "auto:gitlab-52" {
			denied = true
		}
	}
	want := map[string]int{"demo staging " + shaA: 1, "demo production " + shaC: 1, "demo production " + shaD: 1}
	if fmt.Sprint(intents) != fmt.Sprint(want) || !denied {
		t.Fatalf("auto-deploy intents %v (want %v), locked denial %v", intents, want, denied)
	}
	e.mustVerify()
}
