package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/idemgate/idemgate/store"
)

// chart is the overview's inline SVG of accepted and completed commands
// per minute over the last hour: numbers only reach the markup.
type chart struct {
	Width, Height       int
	Accepted, Completed string // polyline points
	Max                 int
	TotalAcc, TotalComp int
	Ticks               []tick
	Error               string
}

type tick struct {
	X     int
	Label string
}

const (
	chartW, chartH = 720, 180
	chartMinutes   = 60
)

func newChart(now time.Time, accepted, completed []store.Minute, err error) chart {
	c := chart{Width: chartW, Height: chartH}
	if err != nil {
		c.Error = err.Error()
	}
	start := now.Truncate(time.Minute).Add(-(chartMinutes - 1) * time.Minute)
	bucket := func(ms []store.Minute) ([chartMinutes]int, int) {
		var b [chartMinutes]int
		total := 0
		for _, m := range ms {
			i := int(m.At.Sub(start) / time.Minute)
			if i >= 0 && i < chartMinutes {
				b[i] += m.Count
				total += m.Count
			}
		}
		return b, total
	}
	acc, ta := bucket(accepted)
	comp, tc := bucket(completed)
	c.TotalAcc, c.TotalComp = ta, tc
	c.Max = 1
	for i := range chartMinutes {
		c.Max = max(c.Max, acc[i], comp[i])
	}
	points := func(b [chartMinutes]int) string {
		var sb strings.Builder
		for i, n := range b {
			x := i * (chartW - 1) / (chartMinutes - 1)
			y := chartH - 1 - n*(chartH-2)/c.Max
			fmt.Fprintf(&sb, "%d,%d ", x, y)
		}
		return strings.TrimSpace(sb.String())
	}
	c.Accepted, c.Completed = points(acc), points(comp)
	for i := 0; i < chartMinutes; i += 15 {
		c.Ticks = append(c.Ticks, tick{X: i * (chartW - 1) / (chartMinutes - 1), Label: start.Add(time.Duration(i) * time.Minute).UTC().Format("15:04")})
	}
	return c
}
