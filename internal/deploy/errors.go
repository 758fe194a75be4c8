package deploy

import (
	"errors"
	"fmt"
)

// Code names an expected condition: something outside shipbot that a
// person can act on (start the host, add the key, free the disk), as
// opposed to a bug. Adapters answer it with its own words instead of
// "internal error".
type Code string

const (
	// CodeUnreachable: the host does not answer (refused, no route, timeout).
	CodeUnreachable Code = "unreachable"
	// CodeAuth: the host refused shipbot's key or credentials.
	CodeAuth Code = "auth"
	// CodeMissing: a file or directory the command needs is not there.
	CodeMissing Code = "missing"
	// CodeDiskFull: no space left on a disk.
	CodeDiskFull Code = "disk_full"
	// CodeFailed: a configured command ran and failed.
	CodeFailed Code = "failed"
)

// Error is an expected condition with a message written for the person who
// asked: what happened and where ("no log file at /srv/app/shared/app.log on
// web1 yet"). Msg holds no secret; Err keeps the cause for the log.
type Error struct {
	Code Code
	Msg  string
	Err  error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code, cause err and a formatted message.
func Errorf(code Code, err error, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...), Err: err}
}

// ErrorCode is the code of the first *Error in err's chain, "" if none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
