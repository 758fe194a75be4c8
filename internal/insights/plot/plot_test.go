package plot_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/insights/plot"
)

func report(days int) *insights.Report {
	from := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	r := &insights.Report{From: from, Days: days}
	for i := range days {
		d := insights.Day{Date: from.AddDate(0, 0, i), Live: i % 4, RolledBack: i % 3 / 2, Failed: i % 5 / 4}
		if d.Live > 0 {
			d.LeadTime = insights.Duration(time.Duration(i+1) * 3 * time.Hour)
		}
		r.Daily = append(r.Daily, d)
	}
	return r
}

// near reports whether c is within a few steps of want (anti-aliasing).
func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	d := func(x uint32, y uint8) int { v := int(x>>8) - int(y); return v * v }
	return d(r, want.R)+d(g, want.G)+d(b, want.B) < 300
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	if len(b) < 8 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("not a PNG: % x", b[:min(len(b), 8)])
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func count(img image.Image, want color.RGBA) int {
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			if near(img.At(x, y), want) {
				n++
			}
		}
	}
	return n
}

// The chart is a real PNG of phone-friendly size whose bars (green, amber,
// red) and lead-time line (blue) are drawn, for every window length.
func TestChartDrawsBarsAndLeadTime(t *testing.T) {
	t.Parallel()
	for _, days := range []int{7, 30, 90} {
		b, err := plot.Chart(report(days), "Deploys per day: helpdesk/production")
		if err != nil {
			t.Fatal(err)
		}
		if dir := os.Getenv("SHIPBOT_CHART_DIR"); dir != "" { // to look at it
			_ = os.WriteFile(dir+"/chart-"+time.Duration(days).String()+".png", b, 0o644)
		}
		img := decode(t, b)
		if bd := img.Bounds(); bd.Dx() != 1000 || bd.Dy() != 1000 {
			t.Fatalf("%d days: %v, want 1000×1000", days, bd)
		}
		if len(b) < 10_000 || len(b) > 1<<20 {
			t.Errorf("%d days: %d bytes", days, len(b))
		}
		for name, c := range map[string]color.RGBA{"live": {0x2e, 0x9e, 0x4f, 0xff}, "rolled back": {0xf2, 0xa9, 0x00, 0xff},
			"failed": {0xb3, 0x1b, 0x1b, 0xff}, "lead time": {0x1f, 0x5f, 0xbf, 0xff}} {
			if n := count(img, c); n < 200 {
				t.Errorf("%d days: %s drawn in %d pixels only", days, name, n)
			}
		}
		if white := count(img, color.RGBA{0xff, 0xff, 0xff, 0xff}); white > 950_000 || white < 300_000 {
			t.Errorf("%d days: %d white pixels of a million", days, white)
		}
	}
}

// An empty window still draws both panels with their axes, and no bar.
func TestChartOfAnEmptyWindow(t *testing.T) {
	t.Parallel()
	r := report(7)
	for i := range r.Daily {
		r.Daily[i] = insights.Day{Date: r.Daily[i].Date}
	}
	b, err := plot.Chart(r, "Deploys per day")
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, b)
	if n := count(img, color.RGBA{0x2e, 0x9e, 0x4f, 0xff}); n > 1500 { // the legend's swatch only (a day's bar is ~5000)
		t.Errorf("bars drawn for an empty window: %d green pixels", n)
	}
	if n := count(img, color.RGBA{0, 0, 0, 0xff}); n < 2000 {
		t.Errorf("axes and labels missing: %d black pixels", n)
	}
	if _, err := plot.Chart(&insights.Report{}, "x"); err == nil {
		t.Error("a report without days was drawn")
	}
}
