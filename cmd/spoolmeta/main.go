// Command spoolmeta inspects and repairs a spoolmeta metadata directory or
// PostgreSQL schema, and copies a spool between them: the operator's
// counterpart of mailq, postsuper and qshape for a retry queue stored by the
// filesystem or postgres backend.
//
// Usage:
//
//	spoolmeta [-d DIR] COMMAND [ARGS]
//
// Run "spoolmeta help" for the list of commands and "spoolmeta help COMMAND"
// for the flags and examples of one.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], newEnv()))
}
