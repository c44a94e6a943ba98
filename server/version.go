package server

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
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
	if id := goBuildID(exe); id != "" {
		sum := sha256.Sum256([]byte(Version + "|" + id))
		return hex.EncodeToString(sum[:6])
	}
	// No Go build id (stripped): fall back to size and modification time.
	st, err := os.Stat(exe)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d", Version, st.Size(), st.ModTime().UnixNano())))
	return hex.EncodeToString(sum[:6])
})

// goBuildID reads the Go build id the toolchain writes into every binary
// (the ELF note .note.go.buildid): a hash of what went into the build, the
// same for copies of one binary.
func goBuildID(exe string) string {
	f, err := elf.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return ""
	}
	data, err := sec.Data()
	if err != nil || len(data) < 16 {
		return ""
	}
	// Note layout: namesz, descsz, type (4 bytes each), "Go\x00\x00", desc.
	desc := data[16:]
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		desc = desc[:i]
	}
	return string(desc)
}

// Build identifies this binary (its release and Go build id), so a client
// notices a daemon started from another build, and copies of one binary
// agree.
func Build() string { return buildOnce() }
