package main

import "testing"

func TestParsePolicy(t *testing.T) {
	out := []byte(`linux-image-cloud-amd64:
  Installed: (none)
  Candidate: 7.3.4-1~bpo13+1
  Version table:
     7.3.4-1~bpo13+1 500
        500 http://deb.debian.org/debian trixie-backports/main amd64 Packages
     7.2.13-1 500
        500 http://deb.debian.org/debian sid/main amd64 Packages
`)
	got, err := parsePolicy(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.version != "7.3.4-1~bpo13+1" || got.suite != "trixie-backports" {
		t.Errorf("got version %q suite %q, want 7.3.4-1~bpo13+1 from trixie-backports", got.version, got.suite)
	}
}

func TestParsePolicyNoCandidate(t *testing.T) {
	if _, err := parsePolicy([]byte("linux-image-cloud-amd64:\n  Installed: (none)\n  Candidate: (none)\n")); err == nil {
		t.Error("no candidate: want an error")
	}
	if _, err := parsePolicy(nil); err == nil {
		t.Error("empty output: want an error")
	}
}
