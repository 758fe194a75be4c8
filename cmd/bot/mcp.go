package main

import (
	"log/slog"
	"net/http"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/config"
	"github.com/shipbot/shipbot/internal/httpserver"
	"github.com/shipbot/shipbot/internal/mcp"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// The MCP endpoint is a door no person watches, like the API: its approval
// cards go to the routes with source "shipbot" (notify.JobPosts).
func init() { doors = append(doors, mcp.Platform) }

// newMCPDoor builds the MCP endpoint. Tokens, enums, origins and the
// approval chat follow the running config, so a SIGHUP applies at once.
func newMCPDoor(lv *live, db *sqlite.DB, forward notify.Sender, log *slog.Logger) *mcp.Server {
	tokens := liveTokens(lv)
	return mcp.New(mcp.Options{Tokens: tokens, Store: db, Forward: forward, Log: log, Version: version,
		Catalog: func() commands.Catalog { return catalog(lv.config()) },
		Origins: func() []string { return lv.config().MCP.AllowedOrigins },
		ApprovalChat: func() (notify.Channel, bool) {
			c := lv.config().MCP.ApprovalChat
			if c == "" {
				return notify.Channel{}, false
			}
			ch, err := notify.ParseChannel(c) // validated with the config
			return ch, err == nil
		}})
}

// mcpRoutes mounts the endpoint on every method the Streamable HTTP
// transport uses (POST for messages; GET and DELETE, which the stateless
// handler answers with 405).
func mcpRoutes(c *config.Config, door *mcp.Server) []httpserver.Route {
	if !c.MCP.Enabled {
		return nil
	}
	h := door.Handler()
	var out []httpserver.Route
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
		out = append(out, httpserver.Route{Path: c.MCP.Path, Method: m, Handler: h})
	}
	return out
}
