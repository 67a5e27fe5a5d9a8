package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestFlagErrors: unusable flags exit 2 and name the flag; -h explains
// every flag the operator tunes.
func TestFlagErrors(t *testing.T) {
	secret := []string{"-identity-secret", "detector test secret 0123"}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "-identity-secret"},
		{append(secret, "-rescore-interval", "-1s"), "-rescore-interval"},
		{append(secret, "-min-requests", "0"), "-min-requests"},
		{append(secret, "-threshold", "-2"), "-threshold"},
		{append(secret, "-workers", "0"), "-workers"},
		{append(secret, "-baseline-url", "ftp://x"), "-baseline-url"},
		{append(secret, "-redis", "nohost"), "redis"},
		{append(secret, "-baseline-revalidate", "0s"), "-baseline-revalidate"},
		{append(secret, "-policy", "../../internal/policy/testdata/faulty.yaml"), "faulty.yaml: line 3: sites.a.example.threshold"},
		{append(secret, "-policy", "missing.yaml"), "-policy: reading the policy"},
	}
	for _, tc := range tests {
		var a app
		var stderr bytes.Buffer
		if code := serviceMain(context.Background(), &a, tc.args, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %s", tc.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q does not name %s", tc.args, stderr.String(), tc.want)
		}
	}
	var a app
	var stderr bytes.Buffer
	serviceMain(context.Background(), &a, []string{"-h"}, &stderr)
	for _, f := range []string{"-rescore-interval", "-min-requests", "-threshold", "-identity", "-brokers", "-redis", "-baseline-url", "-token", "-window-buckets", "-scores-topic", "-deadletter-topic", "-requests-topic", "-policy"} {
		if !strings.Contains(stderr.String(), f+" ") && !strings.Contains(stderr.String(), f+"\n") {
			t.Errorf("-h does not explain %s", f)
		}
	}
}
