package main

import (
	"context"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func requeueCmd() *command {
	a := &action{
		name:     "requeue",
		verb:     "requeued",
		to:       metastorage.StateIncoming,
		eligible: requeueable,
		apply: func(ctx context.Context, e *env, b *metafs.Backend, id string, from metastorage.QueueState) error {
			return moveDue(ctx, e, b, id, from, metastorage.StateIncoming)
		},
	}
	return mutateCommand(a, "[flags] ID... | --state STATE --all",
		"Requeue deferred, bounced or held messages to incoming, due now",
		`
Moves each message from deferred, bounce or hold to incoming with NextRetry
set to now, with a compare-and-swap: a message that a worker took meanwhile
is reported as skipped.

Examples:

  spoolmeta requeue msg-123
  spoolmeta requeue --state bounce --all
  spoolmeta requeue --state deferred --all --yes --json`)
}

func requeueable(s metastorage.QueueState) bool {
	return s == metastorage.StateDeferred || s == metastorage.StateBounce || s == metastorage.StateHold
}
