package main

import (
	"runtime/debug"

	"github.com/prometheus/common/version"
)

// fillVersion completes prometheus/common/version (ctwatch_build_info and
// `ctwatch version`) from the build information the Go toolchain embeds,
// for binaries built without -ldflags (go build, go run, go install).
// Values set with -ldflags win.
func fillVersion() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if version.Version == "" {
		version.Version = bi.Main.Version
		if version.Version == "" || version.Version == "(devel)" {
			version.Version = "0.0.0-dev"
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if version.Revision == "" || version.Revision == "unknown" {
				version.Revision = s.Value
			}
		case "vcs.time":
			if version.BuildDate == "" {
				version.BuildDate = s.Value
			}
		}
	}
}
