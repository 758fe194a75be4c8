package backup_test

// Issue 22: a restore never loses data. Every dump loads into a scratch
// database first; a load that fails there changes nothing live.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy/backup"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/deploy/local"
)

// mariaState is a fingerprint of everything a database holds: each table's
// CHECKSUM TABLE EXTENDED and the names of its views, triggers, routines.
func mariaState(t *testing.T, db string) string {
	t.Helper()
	lit := "'" + db + "'"
	tables := strings.Fields(maria(t, "SELECT table_name FROM information_schema.tables WHERE table_schema = "+lit+" AND table_type = 'BASE TABLE' ORDER BY 1"))
	var qualified []string
	for _, tb := range tables {
		qualified = append(qualified, db+"."+tb)
	}
	out := maria(t, "CHECKSUM TABLE "+strings.Join(qualified, ", ")+" EXTENDED")
	out += maria(t, "SELECT GROUP_CONCAT(table_name ORDER BY 1) FROM information_schema.views WHERE table_schema = "+lit)
	out += maria(t, "SELECT GROUP_CONCAT(trigger_name ORDER BY 1) FROM information_schema.triggers WHERE trigger_schema = "+lit)
	out += maria(t, "SELECT GROUP_CONCAT(routine_name ORDER BY 1) FROM information_schema.routines WHERE routine_schema = "+lit)
	return out
}

func noScratchLeft(t *testing.T) {
	t.Helper()
	if out := maria(t, "SHOW DATABASES WHERE `Database` LIKE 'shipbot\\_drill\\_%' OR `Database` LIKE 'shipbot\\_old\\_%'"); strings.TrimSpace(out) != "" {
		t.Errorf("mariadb scratch databases left: %s", out)
	}
}

// A 9 MiB BLOB fits the server's 16 MiB packet limit when stored, but
// mysqldump writes it as an 18 MiB INSERT the server refuses to load.
func TestUnloadableDumpFailsDrillAndRestoreLeavesLiveUntouched(t *testing.T) {
	my := seedMaria(t)
	if got := strings.TrimSpace(maria(t, "SELECT @@GLOBAL.max_allowed_packet")); got != "16777216" {
		t.Skipf("server max_allowed_packet is %s; the case needs the 16 MiB default", got)
	}
	maria(t, "USE "+my.Database+`; CREATE TABLE b_blobs (id INT PRIMARY KEY, data LONGBLOB);
INSERT INTO b_blobs VALUES (1, REPEAT(CHAR(0), 9437184));
CREATE TABLE c_after (id INT PRIMARY KEY); INSERT INTO c_after SELECT seq FROM seq_1_to_50;`)
	r := newRunner(t, local.NewHost(), nil, my)
	ctx := context.Background()
	res, err := r.Backup(ctx, deploy.BackupRequest{ID: "blob-1"}, &deploytest.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Files[0].Manifest
	if m == nil || m.Rows["b_blobs"] != 1 || m.Rows["c_after"] != 50 || m.Rows["tickets"] != 5000 {
		t.Fatalf("manifest = %+v", m)
	}
	rec := deploy.Backup{ID: "blob-1", Location: res.Location, Files: res.Files, State: deploy.BackupOK}

	// The drill fails and names the statement.
	p := &deploytest.Progress{}
	_, derr := r.VerifyBackup(ctx, rec, p)
	err = derr
	if err == nil || !strings.Contains(err.Error(), "INSERT INTO `b_blobs`") {
		t.Fatalf("drill of an unloadable dump = %v\n%s", err, p.Text())
	}
	noScratchLeft(t)

	// Written since the backup: the restore must not lose it.
	maria(t, "USE "+my.Database+"; DELETE FROM tickets WHERE id > 10; INSERT INTO users VALUES (9, 'since');")
	before := mariaState(t, my.Database)
	p2 := &deploytest.Progress{}
	_, err = r.Restore(ctx, rec, true, p2)
	if err == nil {
		t.Fatalf("restore of an unloadable dump succeeded\n%s", p2.Text())
	}
	for _, want := range []string{"nothing live was touched", "INSERT INTO `b_blobs`", "ERROR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	t.Logf("drill: %v\nrestore: %v", derr, err)
	if after := mariaState(t, my.Database); after != before {
		t.Errorf("live database changed by a failed restore:\nbefore %s\nafter  %s", before, after)
	}
	noScratchLeft(t)
	if left, _ := filepath.Glob(filepath.Join(res.Location, ".restore-*")); len(left) != 0 {
		t.Errorf("unpacked dumps left: %v", left)
	}
}

// limitedMaria is a user with every right on the database and on shipbot's
// scratch databases, but no SUPER or SET USER: it cannot create an object
// whose DEFINER is someone else. extra is appended to its grants on db.
func limitedMaria(t *testing.T, db backup.Database, privs string) backup.Database {
	user := "sbl_" + randHex(3)
	pass := "pw" + randHex(6)
	maria(t, fmt.Sprintf(`CREATE USER '%[1]s'@'%%' IDENTIFIED BY '%[2]s';
GRANT %[4]s ON %[3]s.* TO '%[1]s'@'%%';
GRANT ALL ON `+"`shipbot\\_drill\\_%%`"+`.* TO '%[1]s'@'%%';`, user, pass, db.Database, privs))
	t.Cleanup(func() { maria(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%';", user)) })
	db.User, db.Password = user, audit.NewSecret(pass)
	return db
}

func TestDefinerObjectTheUserCannotRecreateRefusesRestore(t *testing.T) {
	root := seedMaria(t)
	maria(t, "USE "+root.Database+"; CREATE DEFINER=`root`@`localhost` VIEW busy AS SELECT id FROM tickets WHERE id < 10;"+
		"CREATE DEFINER=`root`@`localhost` TRIGGER users_bi BEFORE INSERT ON users FOR EACH ROW SET NEW.name = LOWER(NEW.name);")
	my := limitedMaria(t, root, "ALL")
	r := newRunner(t, local.NewHost(), nil, my)
	ctx := context.Background()
	res, err := r.Backup(ctx, deploy.BackupRequest{ID: "definer-1"}, &deploytest.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Files[0].Manifest; m.Objects["views"] != 1 || m.Objects["triggers"] != 1 {
		t.Fatalf("manifest objects = %v", m.Objects)
	}
	rec := deploy.Backup{ID: "definer-1", Location: res.Location, Files: res.Files, State: deploy.BackupOK}
	if _, err := r.VerifyBackup(ctx, rec, &deploytest.Progress{}); err == nil || !strings.Contains(err.Error(), "ERROR 1227") {
		t.Fatalf("drill = %v", err)
	}
	maria(t, "USE "+root.Database+"; UPDATE tickets SET title = 'since' WHERE id = 1; DROP VIEW busy;")
	before := mariaState(t, root.Database)
	_, err = r.Restore(ctx, rec, true, &deploytest.Progress{})
	if err == nil || !strings.Contains(err.Error(), "ERROR 1227") || !strings.Contains(err.Error(), "DEFINER=`root`@`localhost`") ||
		!strings.Contains(err.Error(), "nothing live was touched") {
		t.Fatalf("restore = %v", err)
	}
	if after := mariaState(t, root.Database); after != before {
		t.Errorf("live database changed by a refused restore:\nbefore %s\nafter  %s", before, after)
	}
	noScratchLeft(t)
}
