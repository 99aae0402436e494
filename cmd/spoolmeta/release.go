package main

import (
	"context"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func releaseCmd() *command {
	a := &action{
		name:     "release",
		verb:     "released",
		to:       metastorage.StateDeferred,
		eligible: func(s metastorage.QueueState) bool { return s == metastorage.StateHold },
		apply: func(ctx context.Context, e *env, b *metafs.Backend, id string, _ metastorage.QueueState) error {
			return moveDue(ctx, e, b, id, metastorage.StateHold, metastorage.StateDeferred)
		},
	}
	return mutateCommand(a, "[flags] ID... | --state hold --all",
		"Release held messages to deferred, due now",
		`
Moves each held message to deferred with NextRetry set to now, so that the
queue retries it at once. Messages that are not in hold are skipped.

Examples:

  spoolmeta release held-42
  spoolmeta release --state hold --all --yes`)
}
