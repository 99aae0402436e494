package main

import (
	"context"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func holdCmd() *command {
	a := &action{
		name:     "hold",
		verb:     "held",
		to:       metastorage.StateHold,
		eligible: func(s metastorage.QueueState) bool { return s != metastorage.StateHold },
		apply: func(ctx context.Context, _ *env, b *metafs.Backend, id string, from metastorage.QueueState) error {
			return b.MoveToState(ctx, id, from, metastorage.StateHold)
		},
	}
	return mutateCommand(a, "[flags] ID... | --state STATE --all",
		"Put messages on hold, where no worker touches them",
		`
Moves each message from its state to hold with a compare-and-swap: a
message that a worker moved meanwhile is reported as skipped, not clobbered.
With --state STATE, only messages in STATE are held; with --state STATE --all,
every message in STATE (asking first on a terminal unless --yes).

Prints one line per message on stdout ("held ID (deferred -> hold)",
"skipped ID: ...", "missing ID") and a summary on stderr. Exit status: 0 all
held, 1 some skipped or missing, 2 usage or I/O error.

Examples:

  spoolmeta hold msg-123 msg-124
  spoolmeta hold --state deferred --all --yes
  spoolmeta ls --json deferred | jq -r 'select(.attempts > 3) | .id' | xargs spoolmeta hold --state deferred`)
}

// moveDue moves message id from state from to state to with NextRetry set
// to now, as one compare-and-swap: if the message left from meanwhile, the
// error wraps metastorage.ErrStateConflict and nothing changes.
func moveDue(ctx context.Context, e *env, b *metafs.Backend, id string, from, to metastorage.QueueState) error {
	md, err := b.GetMeta(ctx, id)
	if err != nil {
		return err
	}
	md.State = to
	md.NextRetry = e.now()
	return b.UpdateMetaIn(ctx, id, from, md)
}
