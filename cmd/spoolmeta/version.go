package main

import (
	"flag"
	"fmt"
	"runtime/debug"
)

// version is set at link time with -ldflags "-X main.version=v1.2.3"; when
// empty, the module version or VCS revision from the build info is shown.
var version = ""

func versionCmd() *command {
	return &command{
		name:    "version",
		summary: "Print the version of spoolmeta",
		detail: `
Examples:

  spoolmeta version`,
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("version takes no arguments")
			}
			_, err := fmt.Fprintf(e.stdout, "spoolmeta %s\n", buildVersion())
			return err
		},
	}
}

// buildVersion returns the version of the running binary.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel " + rev + dirty + " " + info.GoVersion
	}
	if v == "" {
		v = "(devel)"
	}
	return v + " " + info.GoVersion
}
