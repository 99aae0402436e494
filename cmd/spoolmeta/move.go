package main

import (
	"flag"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func moveCmd() *command {
	var f mutateFlags
	return &command{
		name:    "move",
		args:    "[flags] ID... FROM TO | - FROM TO | --state FROM --all TO",
		summary: "Move messages from one state to another",
		detail: `
Moves each message from state FROM to state TO, keeping every field but
State and Updated. A message that is not in FROM is reported as skipped.
` + mutateHelp + `

Examples:

  spoolmeta move msg-123 deferred incoming
  spoolmeta move --state bounce --all archived --yes`,
		setFlags: f.define,
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			var from, to metastorage.QueueState
			var err error
			switch {
			case *f.all && len(args) == 1:
				if *f.state == "" {
					return usagef("--all needs --state FROM")
				}
				if to, err = parseState(args[0]); err != nil {
					return err
				}
				args = nil
			case !*f.all && (len(args) >= 3 || *f.nul && len(args) == 2):
				n := len(args)
				if from, err = parseState(args[n-2]); err != nil {
					return err
				}
				if to, err = parseState(args[n-1]); err != nil {
					return err
				}
				if *f.state != "" && *f.state != from.String() {
					return usagef("--state %s disagrees with FROM %s", *f.state, from)
				}
				s := from.String()
				f.state = &s
				args = args[:n-2]
			default:
				return usagef("move needs ID... FROM TO, or --state FROM --all TO")
			}
			if *f.all {
				if from, err = parseState(*f.state); err != nil {
					return err
				}
			}
			if from == to {
				return usagef("FROM and TO are both %s: nothing to move", to)
			}
			return runMutate(e, moveAction(to), f, args)
		},
	}
}

// moveAction moves messages to state to.
func moveAction(to metastorage.QueueState) *action {
	return &action{
		name:     "move",
		verb:     "moved",
		to:       to,
		eligible: anyState,
		change: func(_ *env, md metastorage.MessageMetadata) metastorage.MessageMetadata {
			md.State = to
			return md
		},
	}
}
