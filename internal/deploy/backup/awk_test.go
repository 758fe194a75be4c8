package backup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
