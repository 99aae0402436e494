package main

import (
	"context"
	"fmt"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func deleteCmd() *command {
	a := &action{
		name:     "delete",
		verb:     "deleted",
		eligible: func(metastorage.QueueState) bool { return true },
		apply: func(ctx context.Context, _ *env, b metastorage.Backend, id string, from metastorage.QueueState) error {
			if err := claim(ctx, b, id, from); err != nil {
				return err
			}
			if err := b.DeleteMeta(ctx, id); err != nil {
				return fmt.Errorf("%w (the message stays in hold)", err)
			}
			return nil
		},
	}
	return mutateCommand(a, "[flags] ID... | --state STATE --all",
		"Delete messages",
		`
Deletes each message from the state it is in (or, with --state, only if it
is in that state). The library has no compare-and-delete, so a message is
first moved to hold with a compare-and-swap and then deleted: a message that
a worker moved meanwhile is skipped, not deleted under the worker.

Examples:

  spoolmeta delete msg-123
  spoolmeta delete --state bounce --all
  spoolmeta delete --state deferred --all --yes --json > deleted.jsonl`)
}
