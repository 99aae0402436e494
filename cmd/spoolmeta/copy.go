package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func copyCmd() *command {
	var o copyOptions
	return &command{
		name:    "copy",
		args:    "--from SRC --to DST [flags]",
		summary: "Copy a spool between directories and databases, resumably",
		detail: `
Copies every message of SRC to DST, each a metadata directory or a database
(postgres://USER@HOST/DB?schema=NAME), with every field as it is, Created
and Updated included. DST is created if it is missing. SRC is only read,
unless --move: then each message is removed from SRC once DST has it, and
only if it did not change meanwhile.

A message already at DST with the same record is left as it is, so copy is
resumable: after an interruption (SIGINT, SIGTERM, a lost connection) run
it again and it copies what is left; a second run copies nothing and says
so. A message at DST whose record differs from SRC's is a conflict: it is
reported and left alone, unless --overwrite.

It copies --workers messages at once (8 by default), so that the commits
of a database and the syncs of a directory overlap.

After copying, copy reads SRC again. If nothing changed there meanwhile
(the queue was stopped), it checks every record at DST against SRC and the
counts per state of both. If the queue ran, it says what changed during
the copy: messages added, changed or gone since they were copied; stop the
queue and run copy again (with --overwrite for the changed ones).

Prints one line per message that is not simply copied (conflict, added,
changed, gone, kept, mismatch) on stdout, or with --json one object per
message, and a summary on stderr. Exit status: 0 everything copied and
verified, 1 conflicts, changes during the copy or differences found, 2
usage or I/O error, 130 or 143 stopped by a signal.

Examples:

  spoolmeta copy --from /var/spool/queue/meta --to 'postgres://spool@db/mail?schema=spoolmeta'
  spoolmeta copy --from 'postgres://spool@db/mail' --to /var/spool/queue/meta
  spoolmeta copy --from old/meta --to new/meta --move`,
		setFlags: o.define,
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("copy takes no arguments")
			}
			return runCopyCommand(e, o)
		},
	}
}

// copyOptions are the flags of copy.
type copyOptions struct {
	from, to  *string
	move      *bool
	overwrite *bool
	json      *bool
	workers   *int
}

func (o *copyOptions) define(fs *flag.FlagSet) {
	o.from = fs.String("from", "", "the `SRC` directory or postgres:// URL")
	o.to = fs.String("to", "", "the `DST` directory or postgres:// URL, created if missing")
	o.move = fs.Bool("move", false, "remove each message from SRC once DST has it")
	o.overwrite = fs.Bool("overwrite", false, "replace a message at DST whose record differs from SRC's")
	o.json = fs.Bool("json", false, "print one JSON object per message reported")
	o.workers = fs.Int("workers", 8, "copy `N` messages at once")
}

func runCopyCommand(e *env, o copyOptions) error {
	switch {
	case *o.from == "" || *o.to == "":
		return usagef("copy needs --from SRC and --to DST")
	case sameLocation(*o.from, *o.to):
		return usagef("--from and --to name the same location")
	case *o.workers < 1:
		return usagef("--workers must be at least 1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcMode := modeReadOnly
	if *o.move {
		srcMode = modeWritable
	}
	src, err := openLocation(ctx, *o.from, srcMode, logger(e.stderr))
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := openLocation(ctx, *o.to, modeCreate, logger(e.stderr))
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer dst.Close()
	if same, err := src.same(ctx, dst); err != nil || same {
		if err != nil {
			return fmt.Errorf("compare the source and the destination: %w", err)
		}
		return usagef("--from %s and --to %s are the same spool", src.name, dst.name)
	}
	stop := newStopper()
	defer stop.close()
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	c := newCopier(src, dst, &copyReport{w: w, json: *o.json}, e.stderr)
	c.move, c.overwrite, c.workers, c.stopped = *o.move, *o.overwrite, *o.workers, stop.stopped
	fmt.Fprintf(e.stderr, "copy: from %s to %s\n", src.name, dst.name)
	return c.run(ctx)
}

// newCopier returns a copier from src to dst that reports to out and
// stderr, and never stops early.
func newCopier(src, dst *location, out *copyReport, stderr io.Writer) *copier {
	return &copier{src: src, dst: dst, dstImport: dst, srcCounts: src.stateCounts, dstCounts: dst.stateCounts,
		workers: 1, out: out, stderr: stderr, stopped: func() *interruptedError { return nil }}
}

// sameLocation reports whether a and b name the same directory or URL.
func sameLocation(a, b string) bool {
	if isDatabase(a) || isDatabase(b) {
		return a == b
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// copyEvent is one message that copy reports, and its JSON form.
type copyEvent struct {
	ID     string `json:"id"`
	Result string `json:"result"` // conflict, overwritten, added, changed, gone, kept, mismatch
	State  string `json:"state,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// copyReport prints the events of a copy as they come. It is safe for
// concurrent use.
type copyReport struct {
	w    *bufio.Writer
	json bool
	mu   sync.Mutex
}

// flush writes what is buffered.
func (r *copyReport) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w.Flush()
}

func (r *copyReport) event(ev copyEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		return writeJSON(r.w, ev)
	}
	line := fmt.Sprintf("%s %s", ev.Result, escapeID(ev.ID))
	if ev.State != "" {
		line += " (" + ev.State + ")"
	}
	if ev.Detail != "" {
		line += ": " + escape(ev.Detail)
	}
	_, err := fmt.Fprintln(r.w, line)
	return err
}

// seen is what copy keeps of a source record it copied, to notice a
// change: every write of a backend sets a later Updated.
type seen struct {
	state    metastorage.QueueState
	updated  int64 // Unix nanoseconds
	conflict bool  // the destination holds another record, left alone
	moved    bool  // removed from the source
	visited  bool  // found again by the review
}

func seenOf(md metastorage.MessageMetadata) *seen {
	return &seen{state: md.State, updated: md.Updated.UnixNano()}
}

// copyTally counts what a copy did.
type copyTally struct {
	read, copied, already, conflicts, overwritten, moved, kept int
	added, changed, gone, verified, mismatched                 int
}

// counter returns the number of messages per state of a location.
type counter func(context.Context) ([metastorage.NumStates]int64, error)

// copier copies one spool to another. It is not safe for concurrent use.
type copier struct {
	src       metastorage.CompareAndSwapBackend
	dst       metastorage.CompareAndSwapBackend
	dstImport importer
	srcCounts counter
	dstCounts counter

	move, overwrite bool
	workers         int // copies at once
	out             *copyReport
	stderr          io.Writer
	stopped         func() *interruptedError // nil when no signal came

	mu     sync.Mutex       // guards copied, its values and t while workers copy
	copied map[string]*seen // the source records copied or found at the destination
	t      copyTally
}
