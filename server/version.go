package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
)

// Version is the bgagents release.
const Version = "0.1.0"

var buildOnce = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return "unknown"
	}
	st, err := os.Stat(exe)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d", Version, st.Size(), st.ModTime().UnixNano())))
	return hex.EncodeToString(sum[:6])
})

// Build identifies this binary (its release, size and modification time),
// so a client notices a daemon started from another build.
func Build() string { return buildOnce() }
