package sqlite

import (
	"errors"

	msqlite "modernc.org/sqlite"

	"github.com/shipbot/shipbot/internal/deploy"
)

// sqliteFull is SQLITE_FULL, the primary result code of a write that found
// no space on the disk (https://sqlite.org/rescode.html#full).
const sqliteFull = 13

// diskFull names a write that failed for lack of disk space as the
// condition it is, so the chat says so instead of "internal error".
// Nothing was written: the transaction rolled back.
func diskFull(err error) error {
	var se *msqlite.Error
	if err != nil && errors.As(err, &se) && se.Code()&0xff == sqliteFull {
		return deploy.Errorf(deploy.CodeDiskFull, err, "the disk holding shipbot's database is full: free space there (bot.database)")
	}
	return err
}
