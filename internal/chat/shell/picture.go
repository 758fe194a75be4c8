package shell

import (
	"os"
	"path/filepath"
	"regexp"

	"github.com/shipbot/shipbot/internal/notify"
)

// unsafeFileChars are what a saved picture's name may be; anything else is
// replaced, so a name never leaves FileDir or surprises a shell.
var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// savePicture writes a picture attachment to FileDir as "MSGID-NAME" and
// returns the line that tells its path; "" for no picture. A terminal
// cannot show a PNG; the path opens it in an image viewer.
func (s *Shell) savePicture(id string, a *notify.Attachment) string {
	if a == nil || a.Type != notify.MediaPNG {
		return ""
	}
	if s.fileDir == "" {
		return "  (picture not saved: the terminal chat has no file directory)\n"
	}
	name := unsafeFileChars.ReplaceAllString(filepath.Base(a.Name), "_")
	path, err := filepath.Abs(filepath.Join(s.fileDir, unsafeFileChars.ReplaceAllString(id, "_")+"-"+name))
	if err == nil {
		if err = os.MkdirAll(s.fileDir, 0o750); err == nil {
			err = os.WriteFile(path, a.Content, 0o640)
		}
	}
	if err != nil {
		return "  (picture not saved: " + oneLine(err.Error()) + ")\n"
	}
	return "  picture: " + oneLine(path) + "\n"
}
