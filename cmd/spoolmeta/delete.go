package main

func deleteCmd() *command {
	a := &action{
		name:     "delete",
		verb:     "deleted",
		delete:   true,
		eligible: anyState,
	}
	return mutateCommand(a, "[flags] ID... | - | --state STATE --all",
		"Delete messages",
		`
Deletes each message from the state it is in (or, with --state, only if it
is in that state), as postsuper -d does.

Examples:

  spoolmeta delete msg-123
  spoolmeta delete --state bounce --all --yes
  spoolmeta delete --state deferred --all --yes --json > deleted.jsonl`)
}
