package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy/release"
)

func runAwk(t *testing.T, prog, input string) map[string]string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "in.sql")
	if err := os.WriteFile(f, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("env", "LC_ALL=C", "awk", prog, f).CombinedOutput()
	if err != nil {
		t.Fatalf("awk: %v\n%s", err, out)
	}
	return facts(strings.Split(strings.TrimSpace(string(out)), "\n"))
}

// Rows are counted from the dump's text; values holding the row separator,
// quotes, backslashes and binary bytes must not change the count.
func TestMyRowsAwkCountsRowsNotPunctuationInValues(t *testing.T) {
	in := "-- MariaDB dump\n" +
		// MariaDB: one row per line after VALUES.
		"INSERT INTO `a` VALUES\n" +
		"(1,'a),(b'),\n" +
		"(2,'it\\'s),('),\n" +
		"(3,'x\\\\'),\n" +
		"(4,'\\0\\n),(\xff;'),\n" +
		"(5,NULL);\n" +
		// MySQL: every row on the statement's line; a name with a backtick.
		"INSERT INTO `we``ird` VALUES (1,'),('),(2,'\\\\'),(3,'');\n" +
		"INSERT INTO `a` VALUES\n(6,'late');\n" +
		"CREATE TABLE `b` (x int);\n" +
		"-- INSERT INTO `c` VALUES (1) in a comment\n"
	got := runAwk(t, myRowsAwk, in)
	if got["a"] != "6" || got["we`ird"] != "3" || len(got) != 2 {
		t.Errorf("counts = %v", got)
	}
}

func TestPgRowsAwkCountsCopyLines(t *testing.T) {
	in := "SET x = 1;\n" +
		"COPY public.t (id, note) FROM stdin;\n1\ta\\nb\n2\t\\\\.\n\\.\n" +
		"COPY \"Odd\".\"T x\" (id) FROM stdin;\n\\.\n" +
		"COPY public.u (id) FROM stdin;\n7\n\\.\n"
	got := runAwk(t, pgRowsAwk, in)
	if got["public.t"] != "2" || got[`"Odd"."T x"`] != "0" || got["public.u"] != "1" {
		t.Errorf("counts = %v", got)
	}
}

// A MySQL client that does not print the failed statement gets it named
// from the dump's line the error points at.
func TestMyLineScriptPrintsTheNamedLine(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "d.sql")
	if err := os.WriteFile(f, []byte("CREATE TABLE a (x int);\nINSERT INTO `a` VALUES\n(1);\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gzip", "-n", f).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	out, err := exec.Command("sh", "-c", myLineScript, "sh", f+".gz", "2").CombinedOutput()
	if err != nil || string(out) != "INSERT INTO `a` VALUES\n" {
		t.Fatalf("line 2 = %q, %v", out, err)
	}
	err = loadError(&release.ExitError{Argv: []string{"sh"}, Code: 1}, []string{"ERROR 1062 (23000) at line 2: Duplicate entry '1' for key 'PRIMARY'",
		"--------------", string(out[:len(out)-1]), "--------------"})
	if err == nil || err.Error() != "ERROR 1062 (23000) at line 2: Duplicate entry '1' for key 'PRIMARY'; failed statement: INSERT INTO `a` VALUES" {
		t.Errorf("loadError = %v", err)
	}
}

func TestPsqlDoRefusesABodyThatEndsItsQuote(t *testing.T) {
	_, err := (&session{}).psqlDo(context.Background(), "", Database{}, "DO $shipbot$BEGIN PERFORM 'a$shipbot$b'; END$shipbot$")
	if err == nil || !strings.Contains(err.Error(), "cannot quote") {
		t.Fatalf("err = %v", err)
	}
}
