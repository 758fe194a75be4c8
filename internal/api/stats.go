package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/shipbot/shipbot/internal/insights"
)

// stats answers GET /api/v1/stats?app=&env=&window= with the delivery
// figures /stats shows in chat (insights.Report; README "Delivery
// insights"), of the app/envs the token's user may see the status of. The
// query goes through the dispatcher as "/stats APP ENV Nd", so validation,
// permissions and the audit rows are the chat's.
func (s *Server) stats(w http.ResponseWriter, r *http.Request, c caller) {
	v := r.URL.Query()
	q, err := insights.ParseQuery(v.Get("app"), v.Get("env"), v.Get("window"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_input", err.Error())
		return
	}
	text := strings.Join(strings.Fields(fmt.Sprintf("/stats %s %s %dd", q.App, q.Env, q.Days)), " ")
	reply := s.dispatch(r.Context(), c, text)
	if reply.Refused || reply.Stats == nil {
		s.refused(w, r.Context(), reply, q.App, q.Env)
		return
	}
	writeJSON(w, http.StatusOK, reply.Stats)
}
