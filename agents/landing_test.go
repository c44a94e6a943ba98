package agents

import "testing"

func TestRemoteOwner(t *testing.T) {
	for url, want := range map[string]string{
		"https://github.com/me/app.git":       "me",
		"https://github.com/me/app":           "me",
		"https://token@github.com/me/app/":    "me",
		"git@github.com:me/app.git":           "me",
		"ssh://git@github.com/me/app.git":     "me",
		"ssh://git@github.com:22/me/app.git":  "me",
		"https://gitlab.com/me/app.git":       "",
		"/srv/git/app.git":                    "",
		"../app.git":                          "",
		"file:///srv/git/app.git":             "",
		"https://github.com/me/app/extra.git": "",
		"git@github.com:-bad/app.git":         "",
	} {
		if got := remoteOwner(url); got != want {
			t.Errorf("remoteOwner(%q) = %q, want %q", url, got, want)
		}
	}
}
