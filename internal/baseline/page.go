package baseline

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/hbos"
)

// SetScoresTable names the publisher's scores table (its -scores-table),
// where the site pages find a site's recent detections; "" shows none.
func (b *Baselines) SetScoresTable(table string) { b.scoresTable = table }

// pageData is what a site's page shows.
type pageData struct {
	Site    string
	Now     time.Time
	Classes []classPage
	Recent  []recentScore
	// RecentNote says why there are no recent detections to show, if so.
	RecentNote string
}

type classPage struct {
	Class, ServedBy, Version string
	Built                    time.Time
	Age                      time.Duration
	Windows                  int
	Threshold                float64
	Features                 []featurePage
	Error                    string
}

type featurePage struct {
	Name string
	Bars []bar
	// Reach is the contribution at which a feature alone takes an equal
	// share of the threshold: the bins beyond it are marked.
	Reach float64
}

// bar is one histogram bin drawn in SVG.
type bar struct {
	X, Y, W, H   float64
	Lo, Hi       float64
	Density      float64
	Contribution float64
	Beyond       bool // its contribution is past the feature's reach
}

type recentScore struct {
	At               time.Time
	Visitor          string
	Score, Threshold float64
	Top              string
}

// Geometry of a histogram's SVG.
const (
	svgWidth  = 360.0
	svgHeight = 80.0
)

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"f":   func(x float64) string { return fmt.Sprintf("%.4g", x) },
	"ago": func(d time.Duration) string { return d.Round(time.Second).String() },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>anomalyd: {{.Site}}</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left}
rect.bin{fill:#6b8fbf}rect.beyond{fill:#c0392b}.feature{display:inline-block;margin:0 1.5em 1em 0}</style></head>
<body>
<h1 id="site">{{.Site}}</h1>
<p>As of {{.Now.Format "2006-01-02T15:04:05Z07:00"}}. Each histogram is a feature of the site's visitor-windows as the baseline learned it; the bins in red score more, on their own, than the feature's share of the threshold (the threshold divided by the number of features).</p>
{{range .Classes}}<section class="class" id="class-{{.Class}}">
<h2>{{.Class}}</h2>
{{if .Error}}<p class="error">{{.Error}}</p>{{else}}
<p>Baseline <code class="version">{{.Version}}</code>{{if .ServedBy}} (served by {{.ServedBy}}){{end}}, built {{.Built.Format "2006-01-02T15:04:05Z07:00"}} ({{ago .Age}} ago) from {{.Windows}} visitor-windows; threshold <span class="threshold">{{f .Threshold}}</span>.</p>
{{range .Features}}<div class="feature"><h3>{{.Name}} <small>(red: past {{f .Reach}})</small></h3>
<svg class="histogram" data-feature="{{.Name}}" width="` + fmt.Sprint(svgWidth) + `" height="` + fmt.Sprint(svgHeight) + `" role="img" aria-label="{{.Name}}">
{{range .Bars}}<rect class="bin{{if .Beyond}} beyond{{end}}" x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="{{f .H}}"><title>[{{f .Lo}}, {{f .Hi}}): density {{f .Density}}, contribution {{f .Contribution}}</title></rect>
{{end}}</svg></div>
{{end}}{{end}}</section>
{{end}}
<h2>Recent detections</h2>
{{if .Recent}}<table id="recent"><tr><th>scored at</th><th>visitor</th><th>score</th><th>threshold</th><th>top features</th></tr>
{{range .Recent}}<tr class="detection"><td>{{.At.Format "2006-01-02T15:04:05Z07:00"}}</td><td><code>{{.Visitor}}</code></td><td>{{f .Score}}</td><td>{{f .Threshold}}</td><td>{{.Top}}</td></tr>
{{end}}</table>{{else}}<p id="recent-none">{{.RecentNote}}</p>{{end}}
</body></html>
`))

// servePage serves GET /v1/sites/{site}/page: the site's baselines, each
// feature's histogram as SVG, and its recent scores above their
// thresholds, from the scores table. Server-rendered, without scripts.
func (b *Baselines) servePage(w http.ResponseWriter, r *http.Request) {
	site := siteName(r.PathValue("site"))
	data := pageData{Site: site, Now: time.Now().UTC()}
	found := false
	for c := range features.Class(features.NumClasses) {
		cp := classPage{Class: c.String()}
		bl, err := b.Get(r.Context(), site, c)
		if err != nil {
			cp.Error = err.Error()
			data.Classes = append(data.Classes, cp)
			continue
		}
		found = true
		cp.Version, cp.Built, cp.Windows, cp.Threshold = bl.Version, bl.Built, bl.Windows, bl.Model.Threshold()
		cp.Age = data.Now.Sub(bl.Built)
		if bl.Site != site || bl.Class != c {
			cp.ServedBy = bl.Site + "/" + bl.Class.String()
		}
		cp.Features = histograms(bl.Model)
		data.Classes = append(data.Classes, cp)
	}
	if !found {
		http.Error(w, fmt.Sprintf("%s has no baseline", site), http.StatusNotFound)
		return
	}
	var err error
	if data.Recent, err = b.recentDetections(r.Context(), site, 20); err != nil {
		b.logger.Warn("reading recent detections for a page", "site", site, "err", err)
		data.RecentNote = "The recent detections could not be read: " + err.Error()
	} else if len(data.Recent) == 0 {
		data.RecentNote = "No score above its threshold in the scores table."
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTemplate.Execute(w, data); err != nil {
		b.logger.Warn("writing a page", "site", site, "err", err)
	}
}

// histograms draws each feature's histogram of m.
func histograms(m *hbos.Model) []featurePage {
	names := m.Names()
	n := m.Features()
	reach := m.Threshold() / float64(n)
	x := make([]float64, n)
	contrib := make([]float64, n)
	var out []featurePage
	for j := range n {
		edges, density := m.Histogram(j)
		fp := featurePage{Name: names[j], Reach: reach}
		peak := 0.0
		for _, d := range density {
			peak = max(peak, d)
		}
		w := svgWidth / float64(len(density))
		for i, d := range density {
			// A bin's contribution: the model's term for a value inside it.
			x[j] = (edges[i] + edges[i+1]) / 2
			if _, err := m.Explain(x, contrib); err != nil {
				continue
			}
			h := 0.0
			if peak > 0 {
				h = d / peak * (svgHeight - 2)
			}
			fp.Bars = append(fp.Bars, bar{X: float64(i) * w, Y: svgHeight - h, W: max(w-1, 1), H: max(h, 1),
				Lo: edges[i], Hi: edges[i+1], Density: d, Contribution: contrib[j], Beyond: contrib[j] > reach})
		}
		x[j] = 0
		out = append(out, fp)
	}
	return out
}

// recentDetections reads the site's latest scores above their thresholds
// from the scores table, at most n.
func (b *Baselines) recentDetections(ctx context.Context, site string, n int) ([]recentScore, error) {
	if b.scoresTable == "" {
		return nil, nil
	}
	q := fmt.Sprintf(`SELECT scored_at, visitor, score, threshold, feature_names, feature_contributions
FROM %s FINAL WHERE site = ? AND model = '' AND score > threshold ORDER BY scored_at DESC LIMIT %d`, b.scoresTable, n)
	rows, err := b.conn.Query(ctx, q, site)
	if err != nil {
		return nil, fmt.Errorf("querying %s: %w", b.scoresTable, err)
	}
	defer rows.Close()
	var out []recentScore
	for rows.Next() {
		var rs recentScore
		var visitor uint64
		var names []string
		var contribs []float64
		if err := rows.Scan(&rs.At, &visitor, &rs.Score, &rs.Threshold, &names, &contribs); err != nil {
			return nil, fmt.Errorf("reading %s: %w", b.scoresTable, err)
		}
		rs.Visitor = fmt.Sprintf("%016x", visitor)
		rs.Top = topFeatures(names, contribs, 3)
		out = append(out, rs)
	}
	return out, rows.Err()
}

// topFeatures formats the k largest contributions.
func topFeatures(names []string, contribs []float64, k int) string {
	idx := make([]int, min(len(names), len(contribs)))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(contribs[b], contribs[a]) })
	parts := make([]string, 0, k)
	for _, j := range idx[:min(k, len(idx))] {
		parts = append(parts, fmt.Sprintf("%s (%+.1f)", names[j], contribs[j]))
	}
	return strings.Join(parts, ", ")
}
