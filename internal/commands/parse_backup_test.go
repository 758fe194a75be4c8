package commands

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseBackupCommands(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Command
	}{
		{"/backup helpdesk prod", Command{Name: "backup", App: "helpdesk", Env: "prod"}},
		{"/backup verify helpdesk prod 20261123-030000-4", Command{Name: "backup", App: "helpdesk", Env: "prod", Verify: true, Backup: "20261123-030000-4"}},
		{"/backups helpdesk prod", Command{Name: "backups", App: "helpdesk", Env: "prod"}},
		{"/restore helpdesk prod 20261123-030000-4", Command{Name: "restore", App: "helpdesk", Env: "prod", Backup: "20261123-030000-4"}},
		{"/rollback helpdesk prod --with-db", Command{Name: "rollback", App: "helpdesk", Env: "prod", WithDB: true}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		got.Args = nil
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
			t.Errorf("%q = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"/restore helpdesk prod":               "usage: /restore APP ENV ID",
		"/restore helpdesk prod ../etc/passwd": "is not a backup id",
		"/backup verify helpdesk prod":         "usage: /backup APP ENV",
		"/backup helpdesk prod extra":          "usage: /backup APP ENV",
		"/deploy helpdesk prod --with-db":      "unknown option",
		"/backups helpdesk":                    "usage: /backups APP ENV",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}
