package main

import (
	"fmt"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func requeueCmd() *command {
	a := &action{
		name:     "requeue",
		verb:     "requeued",
		to:       metastorage.StateIncoming,
		eligible: requeueable,
		change: func(e *env, md metastorage.MessageMetadata) metastorage.MessageMetadata {
			return due(e, md, metastorage.StateIncoming)
		},
	}
	return mutateCommand(a, "[flags] ID... | - | --state STATE --all",
		"Requeue deferred, bounced or held messages to incoming, due now",
		`
Moves each message from deferred, bounce or hold to incoming with NextRetry
set to now, as postsuper -r does. Requeueing a bounced message delivers it
again.

Examples:

  spoolmeta requeue msg-123
  spoolmeta requeue --state bounce --all --yes
  spoolmeta requeue --state deferred --all --yes --json`)
}

// requeueable says why requeue does not act on messages in s, or "".
func requeueable(s metastorage.QueueState) string {
	switch s {
	case metastorage.StateDeferred, metastorage.StateBounce, metastorage.StateHold:
		return ""
	}
	return fmt.Sprintf("requeue does not act on messages in %s: only deferred, bounce and hold", s)
}
