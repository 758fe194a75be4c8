package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Uploader is a Host that can write a file that lives on the bot's machine
// (backups upload with it; a deploy streams its artifact into its script).
type Uploader interface {
	// Upload writes r to dst on the host with mode, returning once the file
	// is complete; when ctx ends first, the transfer is abandoned.
	Upload(ctx context.Context, r io.Reader, dst string, mode os.FileMode) error
}

// artifactPath expands {{ref}} in the recipe's artifact path and checks the
// result is a clean absolute path naming an existing regular file.
func artifactPath(pattern, ref string) (string, error) {
	if strings.Contains(pattern, "{{ref}}") && ref == "" {
		return "", errors.New("the artifact path uses {{ref}} but no ref was given and the recipe has no default")
	}
	p := strings.ReplaceAll(pattern, "{{ref}}", ref)
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return "", fmt.Errorf("artifact path %q must be a clean absolute path", p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("artifact %s is not a regular file", p)
	}
	return p, nil
}

// checkScriptHosts refuses a job before any step runs when a host cannot
// run the job's scripts.
func checkScriptHosts(targets []*target) error {
	for _, t := range targets {
		if _, ok := t.host.(ScriptHost); !ok {
			return fmt.Errorf("host %s cannot run deploy scripts", t.name)
		}
	}
	return nil
}

// artifactName is the received archive inside the release dir. The dir is
// created fresh by prepare (plain mkdir), so nothing else can be there yet,
// and removing a failed release removes a leftover archive with it.
const artifactName = ".artifact.tar.gz"

// fileSum is the size and hex SHA-256 of the file at p.
func fileSum(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
