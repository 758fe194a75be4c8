package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Uploader is a Host that can write a file that lives on the bot's machine.
// Artifact deploys need every host to be one.
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

// checkUploaders refuses an artifact deploy before any step runs when a
// host cannot receive files.
func checkUploaders(targets []*target) error {
	for _, t := range targets {
		if _, ok := t.host.(Uploader); !ok {
			return fmt.Errorf("host %s cannot receive an artifact upload", t.name)
		}
	}
	return nil
}

// artifactName is the uploaded archive inside the release dir. The dir is
// created fresh by prepare (plain mkdir), so nothing else can be there yet,
// and removing a failed release removes a leftover archive with it.
const artifactName = ".artifact.tar.gz"

// fetchArtifact streams the artifact into the release dir, unpacks it there
// and removes the archive.
func (j *job) fetchArtifact(ctx context.Context, t *target, dir string) error {
	f, err := os.Open(j.artifact)
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	defer f.Close()
	archive := dir + "/" + artifactName
	up := t.host.(Uploader)
	j.output(t)("uploading " + filepath.Base(j.artifact))
	if err := up.Upload(ctx, f, archive, 0o600); err != nil {
		return fmt.Errorf("uploading the artifact: %w", err)
	}
	if err := t.host.Run(ctx, "", []string{"tar", "-xzf", archive, "-C", dir, "--no-same-owner"}, j.output(t)); err != nil {
		return fmt.Errorf("unpacking the artifact: %w", err)
	}
	if err := t.host.Run(ctx, "", []string{"rm", "-f", "--", archive}, j.output(t)); err != nil {
		return fmt.Errorf("removing the unpacked archive: %w", err)
	}
	return nil
}
