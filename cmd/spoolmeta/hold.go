package main

import (
	"context"
	"fmt"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func holdCmd() *command {
	a := &action{
		name:     "hold",
		verb:     "held",
		to:       metastorage.StateHold,
		eligible: func(s metastorage.QueueState) bool { return s != metastorage.StateHold },
		apply: func(ctx context.Context, _ *env, b metastorage.Backend, id string, from metastorage.QueueState) error {
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

// claim moves message id from state from to hold, where no worker touches
// it, so that a change made in two steps is not raced by the queue. A
// message already in hold is left there.
func claim(ctx context.Context, b metastorage.Backend, id string, from metastorage.QueueState) error {
	if from == metastorage.StateHold {
		return nil
	}
	return b.MoveToState(ctx, id, from, metastorage.StateHold)
}

// releaseTo moves message id, which must be in hold, to state to with
// NextRetry set to now.
//
// The library has no compare-and-swap for a change of content, so the
// check that the message is in hold and the update are two calls: an
// operator who moves the same message out of hold in between is raced.
// Workers are not: they never take messages from hold.
func releaseTo(ctx context.Context, e *env, b metastorage.Backend, id string, to metastorage.QueueState) error {
	md, err := b.GetMeta(ctx, id)
	if err != nil {
		return err
	}
	if md.State != metastorage.StateHold {
		return fmt.Errorf("message is in state %s, expected hold: %w", md.State, metastorage.ErrStateConflict)
	}
	md.State = to
	md.NextRetry = e.now()
	if err := b.UpdateMeta(ctx, id, md); err != nil {
		return fmt.Errorf("%w (the message stays in hold)", err)
	}
	return nil
}
