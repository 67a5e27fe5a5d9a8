package baseline

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
)

// Handler returns the baseline API, version 1. internal/service's Server
// adds authentication, TLS, /metrics and the health checks around it.
//
//	GET  /v1/sites/{site}/baseline
//	     200  the encoded model (pkg/hbos binary encoding), Content-Type
//	          application/octet-stream, ETag "<version>" (a digest of the
//	          encoding), Last-Modified (the build time), Cache-Control no-cache
//	     304  If-None-Match names the current version (If-Modified-Since
//	          and Range work too, as in http.ServeContent)
//	     404  the site has no baseline: too little history (or none)
//	     503  the site has no baseline because its build failed (ClickHouse
//	          unreachable): retry later
//	GET  /v1/sites
//	     200  JSON array of SiteStatus, every site of the requests table
//	     503  the sites cannot be listed (ClickHouse unreachable)
//	POST /v1/sites/{site}/rebuild
//	     200  JSON SiteStatus after building the site's baseline now
//	     422  too few visitor-windows: nothing to build from yet
//	     503  the build failed; the last good baseline is still served
//
// Site names are matched in lower case (ASCII only). Errors are JSON
// objects {"error": "...", "status": SiteStatus}, the status only where a
// site is concerned; its "status" field is ok, too-few, error or pending,
// and its "error" field the reason of the last failed build, e.g.
// `too few visitor-windows for a baseline: "a.example" has 12, needs 1000`.
func (b *Baselines) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sites/{site}/baseline", b.serveBaseline)
	mux.HandleFunc("GET /v1/sites", b.serveSites)
	mux.HandleFunc("POST /v1/sites/{site}/rebuild", b.serveRebuild)
	return mux
}

// apiError is the body of every error answer.
type apiError struct {
	Error  string      `json:"error"`
	Status *SiteStatus `json:"status,omitempty"`
}

func (b *Baselines) serveBaseline(w http.ResponseWriter, r *http.Request) {
	site := siteName(r.PathValue("site"))
	bl, err := b.Get(r.Context(), site)
	if err != nil {
		b.siteError(w, site, err, http.StatusNotFound)
		return
	}
	h := w.Header()
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
	if _, err := b.Rebuild(r.Context(), site); err != nil {
		b.siteError(w, site, err, http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, http.StatusOK, b.status(site))
}

// siteError answers a failed build of site: tooFew (the answer when the
// site has too little history), else 503, with the site's status.
func (b *Baselines) siteError(w http.ResponseWriter, site string, err error, tooFew int) {
	code := http.StatusServiceUnavailable
	if errors.Is(err, ErrTooFewWindows) {
		code = tooFew
	}
	st := b.status(site)
	writeJSON(w, code, apiError{Error: err.Error(), Status: &st})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// An error here is a client gone away; there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}
