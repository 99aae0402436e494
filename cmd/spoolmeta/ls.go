package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// lsOptions are the flags of ls.
type lsOptions struct {
	dir    *string
	json   *bool
	sort   *string
	desc   *bool
	limit  *int
	since  *time.Duration
	header *string
}

// lsFilter selects the messages ls prints.
type lsFilter struct {
	since       time.Time // zero: no filter
	header      string    // "" : no filter
	headerValue string
}

func (f lsFilter) match(md metastorage.MessageMetadata) bool {
	if !f.since.IsZero() && md.Created.Before(f.since) && md.Updated.Before(f.since) {
		return false
	}
	if f.header != "" && lookupHeader(md.Headers, f.header) != f.headerValue {
		return false
	}
	return true
}

func lsCmd() *command {
	var o lsOptions
	return &command{
		name:    "ls",
		args:    "[flags] [STATE...]",
		summary: "List messages, one per line, like mailq",
		detail: `
Lists the messages of the named states (all when none is named): ID, state,
size, creation time, attempts of max, next retry and last error, in columns
that fit the terminal ($COLUMNS or 80 when stdout is not a terminal); the
last error is shortened to fit, IDs never are.

Without --sort, ls streams: it starts printing at once and holds one batch of
messages at a time, in directory order. With --sort it reads the sort keys of
the matching messages first (IDs and keys only), sorts them across the named
states, and then reads and prints each message. --since keeps messages
created or updated within the duration; --header NAME=VALUE keeps messages
whose header NAME is VALUE. ls only reads the directory.

Examples:

  spoolmeta ls
  spoolmeta ls deferred hold --sort created --limit 20
  spoolmeta ls --since 1h --header to=alice@example.com
  spoolmeta ls --json deferred | jq -r 'select(.attempts > 3) | .id'`,
		setFlags: func(fs *flag.FlagSet) {
			o.dir = dirFlag(fs)
			o.json = fs.Bool("json", false, "print one JSON object per message")
			o.sort = fs.String("sort", "", "sort by `KEY`: created, updated, priority or attempts")
			o.desc = fs.Bool("desc", false, "sort in descending order")
			o.limit = fs.Int("limit", 0, "print at most `N` messages (0: all)")
			o.since = fs.Duration("since", 0, "keep messages created or updated within `DURATION` (e.g. 30m, 2h)")
			o.header = fs.String("header", "", "keep messages whose header NAME is VALUE (`NAME=VALUE`)")
		},
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			return runLs(e, o, args)
		},
	}
}

func runLs(e *env, o lsOptions, args []string) error {
	states, err := parseStates(args)
	if err != nil {
		return err
	}
	switch *o.sort {
	case "", metastorage.SortByCreated, metastorage.SortByUpdated, metastorage.SortByPriority, metastorage.SortByAttempts:
	default:
		return usagef("--sort %q: want created, updated, priority or attempts", *o.sort)
	}
	if *o.desc && *o.sort == "" {
		return usagef("--desc needs --sort")
	}
	if *o.limit < 0 {
		return usagef("--limit must not be negative")
	}
	if *o.since < 0 {
		return usagef("--since must not be negative")
	}
	var f lsFilter
	if *o.since > 0 {
		f.since = e.now().Add(-*o.since)
	}
	if *o.header != "" {
		name, value, ok := strings.Cut(*o.header, "=")
		if !ok || name == "" {
			return usagef("--header %q: want NAME=VALUE", *o.header)
		}
		f.header, f.headerValue = name, value
	}
	b, err := openReadOnly(e, metadataDir(e, *o.dir))
	if err != nil {
		return err
	}
	defer b.Close()
	w := bufio.NewWriter(e.stdout)
	p := newLsPrinter(w, *o.json, e.width)
	if *o.sort == "" {
		err = lsStream(b, states, f, *o.limit, p)
	} else {
		err = lsSorted(b, states, f, o, p)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// errLimit stops a listing when its limit is reached.
var errLimit = errors.New("limit reached")

// lsStream prints the matching messages of states as it reads them.
func lsStream(b metastorage.Backend, states []metastorage.QueueState, f lsFilter, limit int, p *lsPrinter) error {
	n := 0
	for _, s := range states {
		err := eachMessage(context.Background(), b, s, func(md metastorage.MessageMetadata) error {
			if !f.match(md) {
				return nil
			}
			if err := p.print(md); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return errLimit
			}
			return nil
		})
		if errors.Is(err, errLimit) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sortEntry is what lsSorted keeps of a message until it prints it.
type sortEntry struct {
	id  string
	key int64
}

// lsSorted lists the IDs of each state sorted by the backend, reads their
// sort keys, sorts them across states and prints them.
func lsSorted(b metastorage.Backend, states []metastorage.QueueState, f lsFilter, o lsOptions, p *lsPrinter) error {
	ctx := context.Background()
	opts := metastorage.MessageListOptions{SortBy: *o.sort, Since: f.since}
	if f.header == "" {
		// Without a header filter, each state's first N are enough.
		opts.Limit = *o.limit
	}
	var entries []sortEntry
	for _, s := range states {
		res, err := b.ListMessages(ctx, s, opts)
		if err != nil {
			return err
		}
		for _, id := range res.MessageIDs {
			md, err := b.GetMeta(ctx, id)
			if errors.Is(err, metastorage.ErrMessageNotFound) {
				continue // deleted since it was listed
			}
			if err != nil {
				return err
			}
			if f.match(md) {
				entries = append(entries, sortEntry{id: id, key: sortKey(md, *o.sort)})
			}
		}
	}
	slices.SortFunc(entries, func(a, b sortEntry) int {
		return cmp.Or(cmp.Compare(a.key, b.key), strings.Compare(a.id, b.id))
	})
	if *o.desc {
		slices.Reverse(entries)
	}
	if *o.limit > 0 && len(entries) > *o.limit {
		entries = entries[:*o.limit]
	}
	for _, en := range entries {
		md, err := b.GetMeta(ctx, en.id)
		if errors.Is(err, metastorage.ErrMessageNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := p.print(md); err != nil {
			return err
		}
	}
	return nil
}

func sortKey(md metastorage.MessageMetadata, by string) int64 {
	switch by {
	case metastorage.SortByCreated:
		return md.Created.UnixNano()
	case metastorage.SortByUpdated:
		return md.Updated.UnixNano()
	case metastorage.SortByPriority:
		return int64(md.Priority)
	default:
		return int64(md.Attempts)
	}
}

// lsPrinter prints messages as JSON lines or as table rows.
type lsPrinter struct {
	w       io.Writer
	json    bool
	cols    lsColumns
	started bool
}

// lsColumns is the table layout for a terminal width.
type lsColumns struct {
	id, created, next, err int // widths; 0 drops the column
}

// layout chooses the columns for width: ID (36, the length of a UUID;
// longer IDs push their row right), state (8), size (6), created (16),
// attempts (5), next retry (16) and the last error with what is left, at
// least 12; on narrow terminals the next retry goes first, then the
// creation time.
func layout(width int) lsColumns {
	const idw, state, size, tm, att, gaps, minErr = 36, 8, 6, 16, 5, 2, 12
	c := lsColumns{id: idw, created: tm, next: tm}
	used := func() int {
		n := c.id + state + size + att + 4*gaps
		if c.created > 0 {
			n += c.created + gaps
		}
		if c.next > 0 {
			n += c.next + gaps
		}
		return n
	}
	if width-used()-gaps < minErr {
		c.next = 0
	}
	if width-used()-gaps < minErr {
		c.created = 0
	}
	c.err = max(width-used()-gaps, 10)
	return c
}

func newLsPrinter(w io.Writer, asJSON bool, width int) *lsPrinter {
	return &lsPrinter{w: w, json: asJSON, cols: layout(width)}
}

func (p *lsPrinter) print(md metastorage.MessageMetadata) error {
	if p.json {
		return writeJSON(p.w, toRecord(md))
	}
	if !p.started {
		p.started = true
		if err := p.row("ID", "STATE", "SIZE", "CREATED", "TRIES", "NEXT RETRY", "LAST ERROR"); err != nil {
			return err
		}
	}
	return p.row(md.ID, md.State.String(), humanSize(md.Size), tableTime(md.Created),
		fmt.Sprintf("%d/%d", md.Attempts, md.MaxAttempts), tableTime(md.NextRetry), md.LastError)
}

func (p *lsPrinter) row(id, state, size, created, tries, next, lastErr string) error {
	var b strings.Builder
	b.WriteString(pad(id, p.cols.id))
	fmt.Fprintf(&b, "  %-8s  %6s", state, size)
	if p.cols.created > 0 {
		fmt.Fprintf(&b, "  %-16s", created)
	}
	fmt.Fprintf(&b, "  %5s", tries)
	if p.cols.next > 0 {
		fmt.Fprintf(&b, "  %-16s", next)
	}
	b.WriteString("  ")
	b.WriteString(shorten(lastErr, p.cols.err))
	_, err := io.WriteString(p.w, strings.TrimRight(b.String(), " ")+"\n")
	return err
}
