package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// An action changes one message. Each change is a compare-and-swap on the
// whole record read just before: a message that changed meanwhile is
// reported as skipped, never overwritten.
type action struct {
	name     string                 // the command
	verb     string                 // what the summary says was done: "held"
	to       metastorage.QueueState // the state it moves to, unless it deletes
	delete   bool                   // it deletes the message
	eligible func(s metastorage.QueueState) string
	// change returns the new record of md; nil for a delete.
	change func(e *env, md metastorage.MessageMetadata) metastorage.MessageMetadata
}

// anyState is an action's eligible function that acts on every state.
func anyState(metastorage.QueueState) string { return "" }

// mutateFlags are the flags common to the commands that change messages.
type mutateFlags struct {
	dir   *string
	state *string
	all   *bool
	yes   *bool
	json  *bool
	nul   *bool
}

func (f *mutateFlags) define(fs *flag.FlagSet) {
	f.dir = dirFlag(fs)
	f.state = fs.String("state", "", "act on messages in `STATE` only; with --all, on every message of STATE")
	f.all = fs.Bool("all", false, "act on every message of the --state")
	f.yes = fs.Bool("yes", false, "do not ask for confirmation of --all (needed when stdin is not a terminal)")
	f.json = fs.Bool("json", false, "print one JSON object per message")
	f.nul = fs.Bool("0", false, "read the IDs from stdin separated by NUL bytes, not lines (implies -)")
}

// mutateHelp is the part of the help that every changing command shares.
const mutateHelp = `
With ID "-", the IDs are read from stdin, one per line (with -0, separated
by NUL bytes, as find -print0 writes them); empty input acts on nothing.

Each change is a compare-and-swap on the whole record: a message that a
worker changed after spoolmeta read it is reported as skipped, not
overwritten. --all asks for confirmation when stdin is a terminal, and
needs --yes when it is not.

Prints one line per message on stdout as it goes ("held ID (deferred ->
hold)", "skipped ID: why", "missing ID"; with --json, objects with id,
action, result, from, to and reason) and a summary on stderr. On SIGINT or
SIGTERM it finishes the message in hand, prints the summary and exits 130
or 143: the output accounts for every change made. Exit status: 0 all done,
1 some skipped or missing, 2 usage or I/O error.`

// outcome is the result for one message, and its JSON form.
type outcome struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Result string `json:"result"` // "done", "skipped" or "missing"
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// tally counts outcomes and prints them, each line as it comes.
type tally struct {
	w                      *bufio.Writer
	json                   bool
	a                      *action
	done, skipped, missing int
}

func (t *tally) report(o outcome) error {
	o.Action = t.a.name
	switch o.Result {
	case "done":
		t.done++
	case "skipped":
		t.skipped++
	default:
		t.missing++
	}
	if t.json {
		if err := writeJSON(t.w, o); err != nil {
			return err
		}
		return t.w.Flush()
	}
	id := escapeID(o.ID)
	var line string
	switch o.Result {
	case "done":
		line = fmt.Sprintf("%s %s", t.a.verb, id)
		if o.From != "" && o.To != "" {
			line += fmt.Sprintf(" (%s -> %s)", o.From, o.To)
		} else if o.From != "" {
			line += fmt.Sprintf(" (from %s)", o.From)
		}
	case "skipped":
		line = fmt.Sprintf("skipped %s: %s", id, escape(o.Reason))
	default:
		line = fmt.Sprintf("missing %s", id)
	}
	if _, err := fmt.Fprintln(t.w, line); err != nil {
		return err
	}
	return t.w.Flush()
}

// finish prints the summary on stderr and returns the command's result.
func (t *tally) finish(stderr io.Writer, stopped *interruptedError) error {
	note := ""
	if stopped != nil {
		note = fmt.Sprintf(" (stopped by %s; nothing else was changed)", stopped.name())
	}
	fmt.Fprintf(stderr, "%s: %d %s, %d skipped, %d missing%s\n", t.a.name, t.done, t.a.verb, t.skipped, t.missing, note)
	switch {
	case stopped != nil:
		return stopped
	case t.skipped+t.missing > 0:
		return errSilentPartial
	}
	return nil
}

// interruptedError reports that a signal stopped the command: exit status
// 128 plus the signal's number.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string { return "stopped by " + e.name() }

func (e *interruptedError) name() string {
	if e.sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

func (e *interruptedError) code() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}

// stopper watches for SIGINT and SIGTERM, so that a changing command stops
// between two messages, never within one.
type stopper struct{ c chan os.Signal }

func newStopper() *stopper {
	s := &stopper{c: make(chan os.Signal, 1)}
	signal.Notify(s.c, os.Interrupt, syscall.SIGTERM)
	return s
}

func (s *stopper) close() { signal.Stop(s.c) }

// stopped returns the error of a signal received, or nil.
func (s *stopper) stopped() *interruptedError {
	select {
	case sig := <-s.c:
		return &interruptedError{sig: sig}
	default:
		return nil
	}
}

// withMutateHelp returns detail with mutateHelp before its examples.
func withMutateHelp(detail string) string {
	text, examples, _ := strings.Cut(detail, "\nExamples:")
	return strings.TrimRight(text, "\n") + "\n" + mutateHelp + "\n\nExamples:" + examples
}

// mutateCommand builds a command that applies a to messages named by ID
// or to a whole state.
func mutateCommand(a *action, args, summary, detail string) *command {
	var f mutateFlags
	return &command{
		name:     a.name,
		args:     args,
		summary:  summary,
		detail:   withMutateHelp(detail),
		setFlags: f.define,
		run: func(e *env, _ *flag.FlagSet, ids []string) error {
			return runMutate(e, a, f, ids)
		},
	}
}

func runMutate(e *env, a *action, f mutateFlags, ids []string) error {
	var from metastorage.QueueState
	hasFrom := *f.state != ""
	if hasFrom {
		s, err := parseState(*f.state)
		if err != nil {
			return err
		}
		if why := a.eligible(s); why != "" {
			return usagef("%s", why)
		}
		from = s
	}
	dash := slices.Contains(ids, "-")
	fromStdin := *f.nul || dash
	if fromStdin && len(ids) > 0 && !(dash && len(ids) == 1) {
		return usagef("give either message IDs or - (or -0) to read them from stdin, not both")
	}
	if fromStdin {
		ids = nil
	}
	switch {
	case *f.all && !hasFrom:
		return usagef("--all needs --state")
	case *f.all && (len(ids) > 0 || fromStdin):
		return usagef("give either message IDs or --all, not both")
	case !*f.all && len(ids) == 0 && !fromStdin:
		return usagef("%s needs message IDs, - to read them from stdin, or --state STATE --all", a.name)
	case *f.all && !*f.yes && !e.input:
		return usagef("--all needs --yes when stdin is not a terminal: nobody can be asked")
	}
	b, err := openWritable(e, metadataDir(e, *f.dir))
	if err != nil {
		return err
	}
	defer b.Close()
	stop := newStopper()
	defer stop.close()
	w := bufio.NewWriter(e.stdout)
	t := &tally{w: w, json: *f.json, a: a}
	if *f.all {
		err = mutateAll(e, b, a, from, *f.yes, stop, t)
	} else {
		src := idsFrom(ids)
		if fromStdin {
			src = readIDs(e.stdin, *f.nul)
		}
		err = mutateIDs(e, b, a, src, from, hasFrom, stop, t)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	var ie *interruptedError
	if errors.As(err, &ie) {
		return t.finish(e.stderr, ie)
	}
	if err != nil {
		return err
	}
	return t.finish(e.stderr, nil)
}

// idItem is one ID of a source of IDs, or the error that ends it.
type idItem struct {
	id  string
	err error
}

// idsFrom returns a source of the IDs of the command line.
func idsFrom(ids []string) <-chan idItem {
	c := make(chan idItem, len(ids))
	for _, id := range ids {
		c <- idItem{id: id}
	}
	close(c)
	return c
}

// readIDs returns a source of the IDs read from r, one per line or, if
// nul, separated by NUL bytes. Empty IDs are left out.
func readIDs(r io.Reader, nul bool) <-chan idItem {
	c := make(chan idItem)
	sep := byte('\n')
	if nul {
		sep = 0
	}
	go func() {
		defer close(c)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
			if i := bytes.IndexByte(data, sep); i >= 0 {
				return i + 1, data[:i], nil
			}
			if atEOF && len(data) > 0 {
				return len(data), data, nil
			}
			return 0, nil, nil
		})
		for sc.Scan() {
			if id := sc.Text(); id != "" {
				c <- idItem{id: id}
			}
		}
		if err := sc.Err(); err != nil {
			c <- idItem{err: fmt.Errorf("read IDs from stdin: %w", err)}
		}
	}()
	return c
}

// mutateIDs applies a to each message of ids, from its current state or,
// when hasFrom, only if it is in from.
func mutateIDs(e *env, b metastorage.CompareAndSwapBackend, a *action, ids <-chan idItem, from metastorage.QueueState, hasFrom bool, stop *stopper, t *tally) error {
	ctx := context.Background()
	for {
		if ie := stop.stopped(); ie != nil {
			return ie
		}
		var it idItem
		var ok bool
		select {
		case sig := <-stop.c:
			return &interruptedError{sig: sig}
		case it, ok = <-ids:
		}
		if !ok {
			return nil
		}
		if it.err != nil {
			return it.err
		}
		id := it.id
		md, err := b.GetMeta(ctx, id)
		if errors.Is(err, metastorage.ErrMessageNotFound) || errors.Is(err, metastorage.ErrInvalidMessageID) {
			if err := t.report(outcome{ID: id, Result: "missing"}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		var o outcome
		switch why := a.eligible(md.State); {
		case hasFrom && md.State != from:
			o = outcome{ID: id, Result: "skipped", Reason: fmt.Sprintf("in state %s, not %s", md.State, from)}
		case why != "":
			o = outcome{ID: id, Result: "skipped", Reason: why}
		default:
			o, err = applyOne(ctx, e, b, a, md)
			if err != nil {
				return err
			}
		}
		if err := t.report(o); err != nil {
			return err
		}
	}
}

// mutateAll applies a to every message in state from, after asking on a
// terminal.
func mutateAll(e *env, b *location, a *action, from metastorage.QueueState, yes bool, stop *stopper, t *tally) error {
	ctx := context.Background()
	if !yes {
		n, err := b.stateCounts(ctx)
		if err != nil {
			return err
		}
		q := fmt.Sprintf("%s all %d messages in %s?", a.name, n[from], from)
		ok, err := confirm(e, q)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("cancelled")
		}
	}
	return eachMessage(ctx, b, from, func(md metastorage.MessageMetadata) error {
		if ie := stop.stopped(); ie != nil {
			return ie
		}
		o, err := applyOne(ctx, e, b, a, md)
		if err != nil {
			return err
		}
		return t.report(o)
	})
}

// applyOne applies a to md, the record just read, as a compare-and-swap,
// and says what came of it.
func applyOne(ctx context.Context, e *env, b metastorage.CompareAndSwapBackend, a *action, md metastorage.MessageMetadata) (outcome, error) {
	o := outcome{ID: md.ID, From: md.State.String()}
	var err error
	if a.delete {
		err = b.DeleteMetaIf(ctx, md.ID, md)
	} else {
		if a.to != md.State {
			o.To = a.to.String()
		}
		err = b.UpdateMetaIf(ctx, md.ID, md, a.change(e, md))
	}
	switch {
	case err == nil:
		o.Result = "done"
	case errors.Is(err, metastorage.ErrStateConflict):
		o.Result, o.Reason = "skipped", conflictReason(err)
	default:
		return o, err
	}
	return o, nil
}

// conflictReason returns the part of a conflict error that says why.
func conflictReason(err error) string {
	s := strings.TrimSuffix(err.Error(), ": "+metastorage.ErrStateConflict.Error())
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return "changed meanwhile: " + s
}

// confirm asks question on stderr and reads the answer from stdin.
func confirm(e *env, question string) (bool, error) {
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
