package baseline

import (
	"testing"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// TestConverterPolicyClasses: the rows of a site's api_paths are API
// requests once the policy names them, as the detectors classify them.
func TestConverterPolicyClasses(t *testing.T) {
	id, err := features.NewIdentity(features.IdentityIP, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConverter(features.DefaultFieldMap(), features.DefaultWindow(), id, features.DefaultClassifier())
	if err != nil {
		t.Fatal(err)
	}
	var pol *policy.Policy
	conv.SetPolicy(func() *policy.Policy { return pol }, features.DefaultClassRules)
	event := []byte(`{"EdgeStartTimestamp":"2026-03-02T10:00:00Z","ClientRequestHost":"shop.example","ClientIP":"192.0.2.8","ClientRequestPath":"/export/1","ClientRequestUserAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36","EdgeResponseStatus":200}`)
	api := func() bool {
		t.Helper()
		r, err := conv.Row(event, "requests", 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		return r.Obs.Flags&features.FlagAPI != 0
	}
	if api() {
		t.Error("an API request without the policy")
	}
	if pol, err = policy.Parse([]byte("sites:\n  shop.example:\n    api_paths: [/export]\n"), "p.yaml"); err != nil {
		t.Fatal(err)
	}
	if !api() {
		t.Error("not an API request under the site's api_paths")
	}
}
