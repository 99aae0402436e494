package main

import (
	"fmt"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func holdCmd() *command {
	a := &action{
		name:     "hold",
		verb:     "held",
		to:       metastorage.StateHold,
		eligible: holdable,
		change: func(_ *env, md metastorage.MessageMetadata) metastorage.MessageMetadata {
			md.State = metastorage.StateHold
			return md
		},
	}
	return mutateCommand(a, "[flags] ID... | - | --state STATE --all",
		"Put queued messages on hold, where no worker touches them",
		`
Moves each message from incoming, active or deferred to hold, as postsuper
-h does. Held, bounced and archived messages are refused: a finished message
goes back to the queue only by requeue, which says so. With --state STATE,
only messages in STATE are held; with --state STATE --all, every message in
STATE.

Examples:

  spoolmeta hold msg-123 msg-124
  spoolmeta hold --state deferred --all --yes
  spoolmeta ls --json deferred | jq -r 'select(.attempts > 3) | .id' | spoolmeta hold --state deferred -`)
}

// holdable says why hold does not act on messages in s, or "".
func holdable(s metastorage.QueueState) string {
	switch s {
	case metastorage.StateIncoming, metastorage.StateActive, metastorage.StateDeferred:
		return ""
	case metastorage.StateHold:
		return "hold does not act on messages in hold: already held"
	}
	return fmt.Sprintf("hold does not act on messages in %s: the message is finished (requeue delivers it again)", s)
}

// due returns md moved to state to with NextRetry set to now.
func due(e *env, md metastorage.MessageMetadata, to metastorage.QueueState) metastorage.MessageMetadata {
	md.State = to
	md.NextRetry = e.now()
	return md
}
