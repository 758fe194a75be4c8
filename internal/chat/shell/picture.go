package shell

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

// unsafeFileChars are replaced in a saved picture's name, so a name never
// leaves FileDir or surprises a shell.
var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// keepPictures is how many saved pictures FileDir keeps; older ones go.
const keepPictures = 100

// savePicture writes a picture attachment to FileDir as
// "TIME-MSGID-NAME" and returns the line that tells its path; "" for no
// picture. A terminal cannot show a PNG; the path opens it in a viewer.
// The time keeps a path printed before a restart (message ids start
// again at 1) pointing at the picture it named.
func (s *Shell) savePicture(id string, a *notify.Attachment) string {
	if a == nil || a.Type != notify.MediaPNG {
		return ""
	}
	if s.fileDir == "" {
		return "  (picture not saved: the terminal chat has no file directory)\n"
	}
	name := time.Now().UTC().Format("20060102-150405") + "-" + unsafeFileChars.ReplaceAllString(id, "_") + "-" +
		unsafeFileChars.ReplaceAllString(filepath.Base(a.Name), "_")
	path, err := filepath.Abs(filepath.Join(s.fileDir, name))
	if err == nil {
		if err = os.MkdirAll(s.fileDir, 0o750); err == nil {
			err = os.WriteFile(path, a.Content, 0o640)
		}
	}
	if err != nil {
		return "  (picture not saved: " + oneLine(err.Error()) + ")\n"
	}
	prunePictures(s.fileDir)
	return "  picture: " + oneLine(path) + "\n"
}

// prunePictures removes all but the newest keepPictures PNGs (names start
// with their time, so name order is age order).
func prunePictures(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".png") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for len(names) > keepPictures {
		_ = os.Remove(filepath.Join(dir, names[0]))
		names = names[1:]
	}
}
