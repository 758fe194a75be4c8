package ssh

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/shipbot/shipbot/internal/deploy"
)

// dialError turns a failed connection to host into the condition a person
// can act on: the host does not answer, or it refused the key. Anything
// else (and a dial the caller cancelled) is returned as it is.
func dialError(ctx context.Context, host, user string, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return deploy.Errorf(deploy.CodeUnreachable, err, "cannot reach %s: its name does not resolve (%s)", host, dns.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return deploy.Errorf(deploy.CodeUnreachable, err, "cannot reach %s: connection refused (is sshd running, is the port right?)", host)
	case errors.As(err, &op):
		return deploy.Errorf(deploy.CodeUnreachable, err, "cannot reach %s: %s", host, op.Err)
	case strings.Contains(err.Error(), "no answer within"):
		return deploy.Errorf(deploy.CodeUnreachable, err, "cannot reach %s: %s", host, lastPart(err.Error()))
	case strings.Contains(err.Error(), "unable to authenticate"):
		// x/crypto/ssh's message when every auth method failed
		// (x/crypto/ssh client_auth.go:154, "ssh: unable to authenticate, attempted methods ...").
		return deploy.Errorf(deploy.CodeAuth, err,
			"%s refused shipbot's key for user %s: add the public key of ssh.key_file to ~%s/.ssh/authorized_keys there", host, user, user)
	}
	return err
}

func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
