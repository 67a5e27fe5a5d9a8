package baseline

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// Handler returns the baseline API, version 1. internal/service's Server
// adds authentication, TLS, /metrics and the health checks around it.
//
//	GET  /v1/sites/{site}/baseline[?class=browser|api]
//	     200  the baseline judging the traffic class (browser by default):
//	          its HBOS model and the site's known visitors, in the pkg/model
//	          binary encoding, Content-Type
//	          application/octet-stream, ETag "<version>" (a digest of the
//	          encoding), Last-Modified (the build time), Cache-Control
//	          no-cache, and Anomalyd-Baseline naming the baseline served:
//	          "site/class", or, when the class has too little history of
//	          the site's own, "*/class" (the class pooled over every site)
//	          or "site/browser" (when even the pool has too little)
//	     304  If-None-Match names the current version (If-Modified-Since
//	          and Range work too, as in http.ServeContent)
//	     400  an unknown class
//	     404  the site has no baseline of the class: too little history
//	          and no pooled baseline, or no history at all
//	     503  the site has no baseline because its build failed (ClickHouse
//	          unreachable): retry later
//	GET  /v1/sites
//	     200  JSON array of SiteStatus, every site of the requests table
//	     503  the sites cannot be listed (ClickHouse unreachable)
//	GET  /v1/sites/{site}/page
//	     200  an HTML page of the site's baselines: version, age, each
//	          feature's histogram as SVG, the bins past the feature's share
//	          of the threshold marked; and its recent scores above their
//	          thresholds, from the scores table (SetScoresTable). No
//	          script. A browser sends the token as a basic-auth password.
//	     404  the site has no baseline of any class
//	GET  /v1/shadow[?period=24h&site=S&min_hits=3&examples=5]
//	     200  JSON ShadowComparison: per site, the visitors each candidate
//	          model (the policy's shadows) detected against those the live
//	          model detected (both, live only, candidate only, with
//	          examples), from the scores table over the period of event
//	          time before its newest score
//	     400  a parameter out of range
//	     404  no scores table (-scores-table), or no scores in it
//	     503  the scores cannot be read (ClickHouse unreachable)
//	POST /v1/sites/{site}/rebuild
//	     200  JSON SiteStatus after building the site's baselines now
//	     403  the caller has -token but the service has an -admin-token
//	     429  more rebuilds than -rebuild-limit a minute; Retry-After says
//	          when to ask again
//	     422  too few visitor-windows for any class, or no history at all:
//	          nothing to build from yet
//	     503  the build failed; the last good baselines are still served
//
// The site "*" (baseline.Pooled) is the baselines pooled over every site.
// Site names are matched in lower case (ASCII only). Errors are JSON
// objects {"error": "...", "status": SiteStatus}, the status only where a
// site is concerned; its "status" field is ok, too-few, error or pending,
// and its "error" field the reason of the last failed build, e.g.
// `too few visitor-windows for a baseline: "a.example" has 12, needs 1000`.
func (b *Baselines) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sites/{site}/baseline", b.serveBaseline)
	mux.HandleFunc("GET /v1/sites", b.serveSites)
	mux.HandleFunc("GET /v1/sites/{site}/page", b.servePage)
	mux.HandleFunc("GET /v1/shadow", b.serveShadow)
	mux.Handle("POST /v1/sites/{site}/rebuild", service.RequireAdmin(http.HandlerFunc(b.serveRebuild)))
	return mux
}

// apiError is the body of every error answer.
type apiError struct {
	Error  string      `json:"error"`
	Status *SiteStatus `json:"status,omitempty"`
}

// ServedHeader names the baseline that judges a site's class: its site
// (Pooled for the pool of every site) and its class.
const ServedHeader = "Anomalyd-Baseline"

func (b *Baselines) serveBaseline(w http.ResponseWriter, r *http.Request) {
	site := siteName(r.PathValue("site"))
	class := features.ClassBrowser
	if name := r.URL.Query().Get("class"); name != "" {
		var err error
		if class, err = features.ParseClass(name); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
			return
		}
	}
	bl, err := b.Get(r.Context(), site, class)
	if err != nil {
		b.siteError(w, site, err, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set(ServedHeader, bl.Site+"/"+bl.Class.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+bl.Version+`"`)
	// Caches may keep a baseline but must ask whether it is still current.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", bl.Built, bytes.NewReader(bl.Encoded))
}

func (b *Baselines) serveSites(w http.ResponseWriter, r *http.Request) {
	sts, err := b.Statuses(r.Context())
	if err != nil {
		b.logger.Warn("listing sites", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, sts)
}

func (b *Baselines) serveRebuild(w http.ResponseWriter, r *http.Request) {
	site := siteName(r.PathValue("site"))
	if b.rebuilds != nil {
		if res := b.rebuilds.Reserve(); res.Delay() > 0 {
			res.Cancel()
			b.metrics.RebuildsLimited.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(res.Delay().Seconds()))))
			writeJSON(w, http.StatusTooManyRequests, apiError{Error: "too many rebuilds: at most -rebuild-limit a minute"})
			return
		}
	}
	if err := b.Rebuild(r.Context(), site); err != nil {
		b.siteError(w, site, err, http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, http.StatusOK, b.status(site))
}

// siteError answers a failed build of site: tooFew (the answer when the
// site has too little history), else 503, with the site's status.
func (b *Baselines) siteError(w http.ResponseWriter, site string, err error, tooFew int) {
	code := http.StatusServiceUnavailable
	if errors.Is(err, ErrTooFewWindows) || errors.Is(err, ErrUnknownSite) {
		code = tooFew
	}
	st := b.status(site)
	if errors.Is(err, ErrUnknownSite) && st.Status == StatusPending {
		// A name without history has no state to report: it has too few
		// windows, as a site of three requests does.
		st.Status = StatusTooFew
		for i := range st.Classes {
			st.Classes[i].Status = StatusTooFew
		}
	}
	writeJSON(w, code, apiError{Error: err.Error(), Status: &st})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// An error here is a client gone away; there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}
