package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// An action changes one message that is in state from. It returns an error
// wrapping metastorage.ErrStateConflict when the message is no longer
// there, which is reported as skipped.
type action struct {
	name     string                              // the command
	verb     string                              // what the summary says was done: "held"
	eligible func(s metastorage.QueueState) bool // the states it acts on
	to       metastorage.QueueState              // the state it moves to, when it moves
	apply    func(ctx context.Context, e *env, b *metafs.Backend, id string, from metastorage.QueueState) error
}

// mutateFlags are the flags common to the commands that change messages.
type mutateFlags struct {
	dir   *string
	state *string
	all   *bool
	yes   *bool
	json  *bool
}

func (f *mutateFlags) define(fs *flag.FlagSet) {
	f.dir = dirFlag(fs)
	f.state = fs.String("state", "", "act on messages in `STATE` only; with --all, on every message of STATE")
	f.all = fs.Bool("all", false, "act on every message of the --state")
	f.yes = fs.Bool("yes", false, "do not ask for confirmation of --all on a terminal")
	f.json = fs.Bool("json", false, "print one JSON object per message")
}

// outcome is the result for one message, and its JSON form.
type outcome struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Result string `json:"result"` // "done", "skipped" or "missing"
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// tally counts outcomes and prints them.
type tally struct {
	w                      io.Writer
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
		return writeJSON(t.w, o)
	}
	var line string
	switch o.Result {
	case "done":
		line = fmt.Sprintf("%s %s", t.a.verb, o.ID)
		if o.From != "" && o.To != "" {
			line += fmt.Sprintf(" (%s -> %s)", o.From, o.To)
		} else if o.From != "" {
			line += fmt.Sprintf(" (from %s)", o.From)
		}
	case "skipped":
		line = fmt.Sprintf("skipped %s: %s", o.ID, o.Reason)
	default:
		line = fmt.Sprintf("missing %s", o.ID)
	}
	_, err := fmt.Fprintln(t.w, line)
	return err
}

// finish prints the summary on stderr and returns the command's result.
func (t *tally) finish(stderr io.Writer) error {
	fmt.Fprintf(stderr, "%s: %d %s, %d skipped, %d missing\n", t.a.name, t.done, t.a.verb, t.skipped, t.missing)
	if t.skipped+t.missing > 0 {
		return errSilentPartial
	}
	return nil
}

// mutateCommand builds a command that applies a to messages named by ID
// or to a whole state.
func mutateCommand(a *action, args, summary, detail string) *command {
	var f mutateFlags
	return &command{
		name:     a.name,
		args:     args,
		summary:  summary,
		detail:   detail,
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
		if !a.eligible(s) {
			return usagef("%s does not act on messages in %s", a.name, s)
		}
		from = s
	}
	switch {
	case *f.all && !hasFrom:
		return usagef("--all needs --state")
	case *f.all && len(ids) > 0:
		return usagef("give either message IDs or --all, not both")
	case !*f.all && len(ids) == 0:
		return usagef("%s needs message IDs, or --state STATE --all", a.name)
	}
	b, err := openWritable(e, metadataDir(e, *f.dir))
	if err != nil {
		return err
	}
	defer b.Close()
	w := bufio.NewWriter(e.stdout)
	t := &tally{w: w, json: *f.json, a: a}
	if *f.all {
		err = mutateAll(e, b, a, from, *f.yes, t)
	} else {
		err = mutateIDs(e, b, a, ids, from, hasFrom, t)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	return t.finish(e.stderr)
}

// mutateIDs applies a to each message of ids, from its current state or,
// when hasFrom, only if it is in from.
func mutateIDs(e *env, b *metafs.Backend, a *action, ids []string, from metastorage.QueueState, hasFrom bool, t *tally) error {
	ctx := context.Background()
	for _, id := range ids {
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
		switch {
		case hasFrom && md.State != from:
			o = outcome{ID: id, Result: "skipped", Reason: fmt.Sprintf("in state %s, not %s", md.State, from)}
		case !a.eligible(md.State):
			o = outcome{ID: id, Result: "skipped", Reason: fmt.Sprintf("%s does not act on messages in %s", a.name, md.State)}
		default:
			o, err = applyOne(ctx, e, b, a, id, md.State)
			if err != nil {
				return err
			}
		}
		if err := t.report(o); err != nil {
			return err
		}
	}
	return nil
}

// mutateAll applies a to every message in state from, after asking on a
// terminal.
func mutateAll(e *env, b *metafs.Backend, a *action, from metastorage.QueueState, yes bool, t *tally) error {
	ctx := context.Background()
	if e.input && !yes {
		if err := b.WaitCounts(ctx); err != nil {
			return err
		}
		q := fmt.Sprintf("%s all %d messages in %s?", a.name, b.GetStateCount(from), from)
		ok, err := confirm(e, q)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("cancelled")
		}
	}
	return eachMessage(ctx, b, from, func(md metastorage.MessageMetadata) error {
		o, err := applyOne(ctx, e, b, a, md.ID, from)
		if err != nil {
			return err
		}
		return t.report(o)
	})
}

// applyOne applies a to message id in state from and says what came of it.
func applyOne(ctx context.Context, e *env, b *metafs.Backend, a *action, id string, from metastorage.QueueState) (outcome, error) {
	o := outcome{ID: id, From: from.String()}
	if a.to != from && a.name != "delete" {
		o.To = a.to.String()
	}
	err := a.apply(ctx, e, b, id, from)
	switch {
	case err == nil:
		o.Result = "done"
	case errors.Is(err, metastorage.ErrStateConflict):
		o.Result, o.Reason = "skipped", conflictReason(err)
	case errors.Is(err, metastorage.ErrMessageNotFound):
		o.Result = "missing"
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
	return "moved meanwhile: " + s
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
