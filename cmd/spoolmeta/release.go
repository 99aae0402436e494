package main

import (
	"fmt"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func releaseCmd() *command {
	a := &action{
		name: "release",
		verb: "released",
		to:   metastorage.StateDeferred,
		eligible: func(s metastorage.QueueState) string {
			if s != metastorage.StateHold {
				return fmt.Sprintf("release does not act on messages in %s: only held ones", s)
			}
			return ""
		},
		change: func(e *env, md metastorage.MessageMetadata) metastorage.MessageMetadata {
			return due(e, md, metastorage.StateDeferred)
		},
	}
	return mutateCommand(a, "[flags] ID... | - | --state hold --all",
		"Release held messages to deferred, due now",
		`
Moves each held message to deferred with NextRetry set to now, so that the
queue retries it at once, as postsuper -H does. Messages that are not in
hold are skipped.

Examples:

  spoolmeta release held-42
  spoolmeta release --state hold --all --yes`)
}
