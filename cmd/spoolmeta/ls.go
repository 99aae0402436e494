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
	"unicode/utf8"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// lsOptions are the flags of ls.
type lsOptions struct {
	dir          *string
	json         *bool
	sort         *string
	desc         *bool
	limit        *int
	since        *time.Duration
	updatedSince *time.Duration
	header       *string
	columns      *string
}

// lsFilter selects the messages ls prints.
type lsFilter struct {
	since        time.Time // on Created; zero: no filter
	updatedSince time.Time // on Updated; zero: no filter
	header       string    // "" : no filter
	headerValue  string
}

func (f lsFilter) match(md metastorage.MessageMetadata) bool {
	if !f.since.IsZero() && md.Created.Before(f.since) {
		return false
	}
	if !f.updatedSince.IsZero() && md.Updated.Before(f.updatedSince) {
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
Lists the messages of the named states (all when none is named), a row each:
ID, state, size, creation time, attempts of max, next retry and last error.
Piped, every column is printed in full; on a terminal, the next retry and
then the creation time are dropped and the last error shortened to fit the
width. -o chooses the columns (` + columnNames() + `).
The ID column is as wide as the longest ID of the first rows; unprintable
bytes in IDs and errors are shown as Go escapes (\n, \x1b). Times are in the
local zone, which each time names. On a terminal, a summary follows on
stderr, which says so when no message matched.

Without --sort, ls streams, in directory order. With --sort it reads the
sort keys of the matching messages first and sorts them across the named
states; --desc reverses the order, and --limit N keeps the first N of it.
--since keeps the messages created within the duration (Created);
--updated-since those whose record changed within it (Updated, which every
change sets). --header NAME=VALUE keeps messages whose header NAME is VALUE.

ls only reads the directory. A message file that cannot be read or is not
valid metadata is named on stderr and counted in the summary, and the exit
status is 1; fsck says more.

Examples:

  spoolmeta ls
  spoolmeta ls deferred hold --sort created --desc --limit 20
  spoolmeta ls --since 1h --header to=alice@example.com
  spoolmeta ls -o id,state,next_retry deferred
  spoolmeta ls --json deferred | jq -r 'select(.attempts > 3) | .id'`,
		setFlags: func(fs *flag.FlagSet) {
			o.dir = dirFlag(fs)
			o.json = fs.Bool("json", false, "print one JSON object per message")
			o.sort = fs.String("sort", "", "sort by `KEY`: created, updated, priority or attempts")
			o.desc = fs.Bool("desc", false, "sort in descending order")
			o.limit = fs.Int("limit", 0, "print at most `N` messages (0: all)")
			o.since = fs.Duration("since", 0, "keep messages created within `DURATION` (e.g. 30m, 2h)")
			o.updatedSince = fs.Duration("updated-since", 0, "keep messages whose record changed within `DURATION`")
			o.header = fs.String("header", "", "keep messages whose header NAME is VALUE (`NAME=VALUE`)")
			o.columns = fs.String("o", "", "print the `COLUMNS`, comma-separated: "+columnNames())
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
	if *o.since < 0 || *o.updatedSince < 0 {
		return usagef("--since and --updated-since must not be negative")
	}
	cols, err := parseColumns(*o.columns)
	if err != nil {
		return err
	}
	if *o.json && *o.columns != "" {
		return usagef("-o applies to the table, not to --json")
	}
	var f lsFilter
	if *o.since > 0 {
		f.since = e.now().Add(-*o.since)
	}
	if *o.updatedSince > 0 {
		f.updatedSince = e.now().Add(-*o.updatedSince)
	}
	if *o.header != "" {
		name, value, ok := strings.Cut(*o.header, "=")
		if !ok || name == "" {
			return usagef("--header %q: want NAME=VALUE", *o.header)
		}
		f.header, f.headerValue = name, value
	}
	sk := newSkipLog(e.stderr, "ls")
	b, err := openReadOnlyLogged(e, metadataDir(e, *o.dir), sk)
	if err != nil {
		return err
	}
	defer b.Close()
	w := bufio.NewWriter(e.stdout)
	p := newLsPrinter(w, *o.json, cols, *o.columns == "", e)
	if *o.sort == "" {
		err = lsStream(b, states, f, *o.limit, p)
	} else {
		err = lsSorted(b, states, f, o, p)
	}
	if err == nil {
		err = p.flush()
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	// The summary is for a person: cron mails what a script prints.
	return sk.summary(plural(p.n, "message"), emptyNote(p.n, args), !e.terminal)
}

// emptyNote is what ls says of an empty listing.
func emptyNote(n int, states []string) string {
	if n > 0 {
		return ""
	}
	if len(states) == 0 {
		return "no messages"
	}
	return "no messages in " + strings.Join(states, ", ")
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

// compareEntries orders entries by key, then by ID; desc reverses it.
func compareEntries(desc bool) func(a, b sortEntry) int {
	return func(a, b sortEntry) int {
		c := cmp.Or(cmp.Compare(a.key, b.key), strings.Compare(a.id, b.id))
		if desc {
			return -c
		}
		return c
	}
}

// lsSorted reads the sort keys of the matching messages of each state,
// sorts them across states and prints them.
func lsSorted(b metastorage.Backend, states []metastorage.QueueState, f lsFilter, o lsOptions, p *lsPrinter) error {
	ctx := context.Background()
	var entries []sortEntry
	for _, s := range states {
		es, err := sortedOf(ctx, b, s, f, o)
		if err != nil {
			return err
		}
		entries = append(entries, es...)
	}
	slices.SortFunc(entries, compareEntries(*o.desc))
	if *o.limit > 0 && len(entries) > *o.limit {
		entries = entries[:*o.limit]
	}
	for _, en := range entries {
		md, err := b.GetMeta(ctx, en.id)
		if errors.Is(err, metastorage.ErrMessageNotFound) {
			continue // deleted since it was listed
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

// sortedOf returns the matching messages of state s with their sort keys:
// all of them, or, with a limit N and no header filter, a set that holds
// the first N of s in the order asked for. It reads the first N in the
// backend's order and, if the N-th key ties with the last read, the rest
// in one more read, as the backend may break ties in the key otherwise
// than ls does: each read lists the whole state.
func sortedOf(ctx context.Context, b metastorage.Backend, s metastorage.QueueState, f lsFilter, o lsOptions) ([]sortEntry, error) {
	opts := metastorage.MessageListOptions{SortBy: *o.sort, Since: f.updatedSince}
	if *o.desc {
		opts.SortOrder = metastorage.SortDesc
	}
	limit := *o.limit
	if f != (lsFilter{}) {
		limit = 0 // the backend does not filter as ls does: read them all
	}
	opts.Limit = limit
	var entries []sortEntry
	for {
		res, err := b.ListMessages(ctx, s, opts)
		if err != nil {
			return nil, err
		}
		var last sortEntry
		for _, id := range res.MessageIDs {
			md, err := b.GetMeta(ctx, id)
			if errors.Is(err, metastorage.ErrMessageNotFound) {
				continue // deleted since it was listed
			}
			if err != nil {
				return nil, err
			}
			last = sortEntry{id: id, key: sortKey(md, *o.sort)}
			if f.match(md) {
				entries = append(entries, last)
			}
		}
		if limit == 0 || !res.HasMore || len(res.MessageIDs) == 0 {
			return entries, nil
		}
		if len(entries) >= limit {
			slices.SortFunc(entries, compareEntries(*o.desc))
			if entries[limit-1].key != last.key {
				return entries, nil
			}
		}
		opts.Offset += len(res.MessageIDs)
		limit, opts.Limit = 0, 0 // the rest at once
	}
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

// column is one column of the ls table.
type column struct {
	name, head string
	right      bool // aligned right
	value      func(md metastorage.MessageMetadata) string
}

var lsColumns = []column{
	{"id", "ID", false, func(md metastorage.MessageMetadata) string { return escapeID(md.ID) }},
	{"state", "STATE", false, func(md metastorage.MessageMetadata) string { return md.State.String() }},
	{"size", "SIZE", true, func(md metastorage.MessageMetadata) string { return humanSize(md.Size) }},
	{"created", "CREATED", false, func(md metastorage.MessageMetadata) string { return tableTime(md.Created) }},
	{"updated", "UPDATED", false, func(md metastorage.MessageMetadata) string { return tableTime(md.Updated) }},
	{"tries", "TRIES", true, func(md metastorage.MessageMetadata) string {
		return fmt.Sprintf("%d/%d", md.Attempts, md.MaxAttempts)
	}},
	{"priority", "PRIO", true, func(md metastorage.MessageMetadata) string { return fmt.Sprint(md.Priority) }},
	{"next_retry", "NEXT RETRY", false, func(md metastorage.MessageMetadata) string { return tableTime(md.NextRetry) }},
	{"retry_policy", "POLICY", false, func(md metastorage.MessageMetadata) string { return escape(md.RetryPolicyName) }},
	{"last_error", "LAST ERROR", false, func(md metastorage.MessageMetadata) string { return oneLine(md.LastError) }},
}

// defaultColumns are the columns ls prints without -o.
var defaultColumns = []string{"id", "state", "size", "created", "tries", "next_retry", "last_error"}

func columnNames() string {
	var names []string
	for _, c := range lsColumns {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// parseColumns parses the value of -o; empty gives the default columns.
func parseColumns(s string) ([]column, error) {
	names := defaultColumns
	if s != "" {
		names = strings.Split(s, ",")
	}
	var cols []column
	for _, n := range names {
		i := slices.IndexFunc(lsColumns, func(c column) bool { return c.name == strings.TrimSpace(n) })
		if i < 0 {
			return nil, usagef("-o: unknown column %q (valid: %s)", n, columnNames())
		}
		cols = append(cols, lsColumns[i])
	}
	return cols, nil
}

// lsPrinter prints messages as JSON lines or as table rows. It holds the
// first rows back to size the columns to them.
type lsPrinter struct {
	w       io.Writer
	json    bool
	cols    []column
	fit     int  // the width to fit, or 0 when rows are printed in full
	drop    bool // columns may be dropped to fit
	n       int  // the messages printed
	pending []metastorage.MessageMetadata
	widths  []int // set when the header is printed
}

// lsHold is the number of rows held back to size the columns.
const lsHold = 256

// newLsPrinter returns a printer of cols. On a terminal it shortens the
// last error to fit the width and, when drop is set, first drops the next
// retry and then the creation time as needed.
func newLsPrinter(w io.Writer, asJSON bool, cols []column, drop bool, e *env) *lsPrinter {
	p := &lsPrinter{w: w, json: asJSON, cols: cols, drop: drop}
	if e.terminal {
		p.fit = e.width
	}
	return p
}

func (p *lsPrinter) print(md metastorage.MessageMetadata) error {
	p.n++
	if p.json {
		return writeJSON(p.w, toRecord(md))
	}
	if p.widths == nil {
		p.pending = append(p.pending, md)
		if len(p.pending) < lsHold {
			return nil
		}
		return p.flush()
	}
	return p.row(p.values(md))
}

// flush prints the header and the rows held back.
func (p *lsPrinter) flush() error {
	if p.json || p.widths != nil || len(p.pending) == 0 {
		return nil
	}
	rows := make([][]string, len(p.pending))
	for i, md := range p.pending {
		rows[i] = p.values(md)
	}
	p.layout(rows)
	var head []string
	for _, c := range p.cols {
		head = append(head, c.head)
	}
	if err := p.row(head); err != nil {
		return err
	}
	for _, r := range rows {
		if err := p.row(r); err != nil {
			return err
		}
	}
	p.pending = nil
	return nil
}

func (p *lsPrinter) values(md metastorage.MessageMetadata) []string {
	v := make([]string, len(p.cols))
	for i, c := range p.cols {
		v[i] = c.value(md)
	}
	return v
}

// layout sets the widths of the columns from rows and, on a terminal,
// drops columns to fit.
func (p *lsPrinter) layout(rows [][]string) {
	width := func() []int {
		w := make([]int, len(p.cols))
		for i, c := range p.cols {
			w[i] = utf8.RuneCountInString(c.head)
			for _, r := range rows {
				w[i] = max(w[i], utf8.RuneCountInString(r[i]))
			}
		}
		return w
	}
	p.widths = width()
	if p.fit == 0 || !p.drop {
		return
	}
	const minErr = 12
	for _, drop := range []string{"next_retry", "created"} {
		if p.used() <= p.fit-minErr {
			break
		}
		i := slices.IndexFunc(p.cols, func(c column) bool { return c.name == drop })
		if i < 0 {
			continue
		}
		p.cols = slices.Delete(p.cols, i, i+1)
		for j := range rows {
			rows[j] = slices.Delete(rows[j], i, i+1)
		}
		p.widths = width()
	}
}

// used returns the width of every column but the last error, with gaps.
func (p *lsPrinter) used() int {
	n := 0
	for i, c := range p.cols {
		if c.name != "last_error" {
			n += p.widths[i] + 2
		}
	}
	return n
}

func (p *lsPrinter) row(v []string) error {
	var b strings.Builder
	for i, c := range p.cols {
		s := v[i]
		if i > 0 {
			b.WriteString("  ")
		}
		switch {
		case c.name == "last_error" && p.fit > 0:
			b.WriteString(shorten(s, max(p.fit-p.used(), 10)))
		case i == len(p.cols)-1 && !c.right:
			b.WriteString(s)
		case c.right:
			b.WriteString(strings.Repeat(" ", max(p.widths[i]-utf8.RuneCountInString(s), 0)) + s)
		default:
			b.WriteString(pad(s, p.widths[i]))
		}
	}
	_, err := io.WriteString(p.w, strings.TrimRight(b.String(), " ")+"\n")
	return err
}
