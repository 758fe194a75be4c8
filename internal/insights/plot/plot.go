// Package plot draws the delivery chart of an insights.Report as a PNG with
// gonum.org/v1/plot: deploys per day stacked by outcome above the median
// lead time per day. It is sized for a phone: a square image Telegram and
// Slack show whole, with type large enough to read once scaled to a
// phone's width.
package plot

import (
	"bytes"
	"fmt"
	"image/color"
	"math"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/shipbot/shipbot/internal/insights"
)

// Size is the chart's width and height; at DPI it is 1000 × 1000 pixels.
const (
	Size = 6.25 * vg.Inch
	DPI  = 160
)

// Colours: green for live, amber for rolled back, red for failed (with
// different lightness, so they part in grey too).
var (
	green = color.RGBA{R: 0x2e, G: 0x9e, B: 0x4f, A: 0xff}
	amber = color.RGBA{R: 0xf2, G: 0xa9, B: 0x00, A: 0xff}
	red   = color.RGBA{R: 0xb3, G: 0x1b, B: 0x1b, A: 0xff}
	blue  = color.RGBA{R: 0x1f, G: 0x5f, B: 0xbf, A: 0xff}
)

// Chart implements insights.Charter.
func Chart(r *insights.Report, title string) ([]byte, error) {
	n := len(r.Daily)
	if n == 0 {
		return nil, fmt.Errorf("chart: no days")
	}
	ticks := dayTicks(r)
	deploys, err := deploysPlot(r, title, ticks)
	if err != nil {
		return nil, err
	}
	lead, err := leadPlot(r, ticks)
	if err != nil {
		return nil, err
	}
	img := vgimg.NewWith(vgimg.UseWH(Size, Size), vgimg.UseDPI(DPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Points(4), PadY: vg.Points(14),
		PadTop: vg.Points(8), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(14)}
	plots := [][]*gplot.Plot{{deploys}, {lead}}
	canvases := gplot.Align(plots, tiles, dc)
	deploys.Draw(canvases[0][0])
	lead.Draw(canvases[1][0])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	return buf.Bytes(), nil
}

// style sets type large enough for a phone.
func style(p *gplot.Plot) {
	p.Title.TextStyle.Font.Size = vg.Points(15)
	p.Title.Padding = vg.Points(8)
	for _, a := range []*gplot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(12)
		a.Tick.Label.Font.Size = vg.Points(11)
		a.Tick.LineStyle.Width = vg.Points(1)
		a.LineStyle.Width = vg.Points(1)
	}
	p.Legend.TextStyle.Font.Size = vg.Points(12)
}

func deploysPlot(r *insights.Report, title string, ticks gplot.Ticker) (*gplot.Plot, error) {
	p := gplot.New()
	style(p)
	p.Title.Text = title
	p.X.Label.Text = "day (UTC)"
	p.Y.Label.Text = "deploys"
	p.X.Tick.Marker = ticks
	n := len(r.Daily)
	live, back, failed := make(plotter.Values, n), make(plotter.Values, n), make(plotter.Values, n)
	most := 0
	for i, d := range r.Daily {
		live[i], back[i], failed[i] = float64(d.Live), float64(d.RolledBack), float64(d.Failed)
		most = max(most, d.Live+d.RolledBack+d.Failed)
	}
	// Bars fill most of a day's slot whatever the window's length.
	width := vg.Length(float64(Size-vg.Points(80)) / float64(n) * 0.75)
	var prev *plotter.BarChart
	for _, s := range []struct {
		name string
		vs   plotter.Values
		c    color.Color
	}{{"live", live, green}, {"rolled back", back, amber}, {"failed", failed, red}} {
		b, err := plotter.NewBarChart(s.vs, width)
		if err != nil {
			return nil, err
		}
		b.Color, b.LineStyle.Width = s.c, 0
		if prev != nil {
			b.StackOn(prev)
		}
		prev = b
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(6)
	p.Legend.Padding = vg.Points(3)
	// Headroom above the tallest bar for the legend's three lines.
	p.Y.Min, p.Y.Max = 0, math.Max(4, float64(most)*1.6+1)
	p.Y.Tick.Marker = intTicks{}
	p.X.Min, p.X.Max = -0.6, float64(n)-0.4
	p.Add(plotter.NewGrid())
	return p, nil
}

func leadPlot(r *insights.Report, ticks gplot.Ticker) (*gplot.Plot, error) {
	p := gplot.New()
	style(p)
	p.Title.Text = "Lead time for changes (median per day)"
	p.X.Label.Text = "day (UTC)"
	p.X.Tick.Marker = ticks
	n := len(r.Daily)
	p.X.Min, p.X.Max = -0.6, float64(n)-0.4
	var pts plotter.XYs
	longest := 0.0
	for i, d := range r.Daily {
		if d.LeadTime > 0 {
			h := hours(d.LeadTime)
			pts = append(pts, plotter.XY{X: float64(i), Y: h})
			longest = math.Max(longest, h)
		}
	}
	// The unit keeps the axis in whole numbers with a few labels.
	unit, div := "hours", 1.0
	switch {
	case longest > 72:
		unit, div = "days", 24
	case longest < 2:
		unit, div = "minutes", 1.0/60
	}
	for i := range pts {
		pts[i].Y /= div
	}
	p.Y.Label.Text = "lead time (" + unit + ")"
	p.Y.Min, p.Y.Max = 0, math.Max(1, longest/div*1.15)
	p.Y.Tick.Marker = intTicks{}
	p.Add(plotter.NewGrid())
	if len(pts) == 0 {
		p.Title.Text += ": none known"
		return p, nil
	}
	line, dots, err := plotter.NewLinePoints(pts)
	if err != nil {
		return nil, err
	}
	line.Color, line.Width = blue, vg.Points(2)
	dots.Color, dots.Radius, dots.Shape = blue, vg.Points(4), draw.CircleGlyph{}
	if n > 30 {
		dots.Radius = vg.Points(2.5)
	}
	p.Add(line, dots)
	return p, nil
}

// hours is a duration in hours.
func hours(d insights.Duration) float64 { return float64(d) / 3.6e12 }

// dayTicks labels days "Nov 26", about seven labels whatever the window.
func dayTicks(r *insights.Report) gplot.Ticker {
	step := (len(r.Daily) + 6) / 7
	var ts gplot.ConstantTicks
	for i, d := range r.Daily {
		label := ""
		if i%step == 0 {
			label = d.Date.Format("Jan 2")
		}
		ts = append(ts, gplot.Tick{Value: float64(i), Label: label})
	}
	return ts
}

// intTicks marks whole numbers only: half a deploy means nothing.
type intTicks struct{}

func (intTicks) Ticks(lo, hi float64) []gplot.Tick {
	step := math.Max(1, math.Ceil((hi-lo)/6))
	var out []gplot.Tick
	for v := math.Ceil(lo); v <= hi; v += step {
		out = append(out, gplot.Tick{Value: v, Label: fmt.Sprint(v)})
	}
	return out
}
