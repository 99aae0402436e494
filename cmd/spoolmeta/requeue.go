package main

import (
	"context"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func requeueCmd() *command {
	a := &action{
		name:     "requeue",
		verb:     "requeued",
		to:       metastorage.StateIncoming,
		eligible: requeueable,
		apply: func(ctx context.Context, e *env, b metastorage.Backend, id string, from metastorage.QueueState) error {
			if err := claim(ctx, b, id, from); err != nil {
				return err
			}
			return releaseTo(ctx, e, b, id, metastorage.StateIncoming)
		},
	}
	return mutateCommand(a, "[flags] ID... | --state STATE --all",
		"Requeue deferred, bounced or held messages to incoming, due now",
		`
Moves each message from deferred, bounce or hold to incoming with NextRetry
set to now. A message in deferred or bounce is first moved to hold with a
compare-and-swap, so that a worker that takes it meanwhile wins and the
message is reported as skipped; it is then rewritten into incoming. Should
that second step fail, the message stays in hold and the error says so.

Examples:

  spoolmeta requeue msg-123
  spoolmeta requeue --state bounce --all
  spoolmeta requeue --state deferred --all --yes --json`)
}

func requeueable(s metastorage.QueueState) bool {
	return s == metastorage.StateDeferred || s == metastorage.StateBounce || s == metastorage.StateHold
}
