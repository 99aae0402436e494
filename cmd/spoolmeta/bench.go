package main

import "flag"

func benchCmd() *command {
	return &command{
		name:    "bench",
		summary: "Measure the speed of the backend on this disk",
		detail:  "Examples:\n\n  spoolmeta bench",
		run:     func(e *env, _ *flag.FlagSet, args []string) error { return nil },
	}
}
