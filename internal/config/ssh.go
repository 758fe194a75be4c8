package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// SSH is how the ssh driver reaches an env's hosts.
type SSH struct {
	Hosts          []string // "host" or "host:port"
	User           string
	KeyFile        string
	KnownHosts     string
	Parallel       int
	ConnectTimeout Duration
	Keepalive      Duration
}

func (s SSH) validate(d *decoder, key string) {
	hk := key + ".hosts"
	if len(s.Hosts) == 0 {
		d.fail(d.lineOf(hk), hk, "at least one host is required")
	}
	seen := map[string]bool{}
	for i, h := range s.Hosts {
		k := index(hk, i)
		if err := checkHost(h); err != nil {
			d.fail(d.lineOf(k), k, "%v", err)
			continue
		}
		if seen[h] {
			d.fail(d.lineOf(k), k, "host %q is listed twice", h)
		}
		seen[h] = true
	}
	switch {
	case s.User == "":
		d.fail(d.lineOf(key+".user"), key+".user", "is required")
	case !sshUserPattern.MatchString(s.User):
		d.fail(d.lineOf(key+".user"), key+".user", "%q is not a valid user name", s.User)
	}
	if strings.TrimSpace(s.KeyFile) == "" {
		d.fail(d.lineOf(key+".key_file"), key+".key_file", "is required")
	}
	if strings.TrimSpace(s.KnownHosts) == "" {
		// Host keys are always verified; there is no "accept any key" mode.
		d.fail(d.lineOf(key+".known_hosts"), key+".known_hosts", "is required (a pinned known_hosts file)")
	}
	d.atLeast(key+".parallel", s.Parallel, 1)
	d.positive(key+".connect_timeout", s.ConnectTimeout)
}

// checkHost accepts "host", "host:port", an IP address, or "[ipv6]:port".
func checkHost(h string) error {
	host := h
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		hh, port, err := net.SplitHostPort(h)
		if err != nil {
			return fmt.Errorf("host %q must be host or host:port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("host %q has an invalid port %q", h, port)
		}
		host = hh
	}
	if net.ParseIP(host) == nil && !hostnamePattern.MatchString(host) {
		return fmt.Errorf("host %q is not a host name or IP address", h)
	}
	return nil
}
