package main

import (
	"context"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func deleteCmd() *command {
	a := &action{
		name:     "delete",
		verb:     "deleted",
		eligible: func(metastorage.QueueState) bool { return true },
		apply: func(ctx context.Context, _ *env, b *metafs.Backend, id string, from metastorage.QueueState) error {
			return b.DeleteMetaIn(ctx, id, from)
		},
	}
	return mutateCommand(a, "[flags] ID... | --state STATE --all",
		"Delete messages",
		`
Deletes each message from the state it is in (or, with --state, only if it
is in that state), with a compare-and-delete: a message that a worker moved
meanwhile is skipped, not deleted under the worker.

Examples:

  spoolmeta delete msg-123
  spoolmeta delete --state bounce --all
  spoolmeta delete --state deferred --all --yes --json > deleted.jsonl`)
}
