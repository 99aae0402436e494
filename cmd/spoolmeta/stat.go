package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// ageBuckets are the upper limits of the age table's columns, as qshape
// has them; the last column holds everything older.
var ageBuckets = []time.Duration{
	5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute,
	160 * time.Minute, 320 * time.Minute, 640 * time.Minute, 1280 * time.Minute,
}

// ageColumn returns the index of the age table's column for age.
func ageColumn(age time.Duration) int {
	for i, limit := range ageBuckets {
		if age < limit {
			return i
		}
	}
	return len(ageBuckets)
}

// statRow is one row of stat's tables, and its JSON form.
type statRow struct {
	By     string     `json:"by"`  // "state", "header:NAME" or "domain:NAME"
	Key    string     `json:"key"` // the state name or header value
	Count  int64      `json:"count"`
	Size   int64      `json:"size"`
	Oldest *time.Time `json:"oldest"` // the oldest Created
	Newest *time.Time `json:"newest"` // the newest Created
	Ages   []int64    `json:"ages"`   // counts per age column: <5m, <10m, ... <1280m, older
	// AgeColumns names the columns of Ages: "5m" counts ages under 5
	// minutes, "1280m+" ages of 1280 minutes and more.
	AgeColumns []string `json:"age_columns"`
}

// ageColumnNames are the names of the age table's columns.
func ageColumnNames() []string {
	var names []string
	for _, d := range ageBuckets {
		names = append(names, fmt.Sprintf("%dm", int(d.Minutes())))
	}
	return append(names, fmt.Sprintf("%dm+", int(ageBuckets[len(ageBuckets)-1].Minutes())))
}

func (r *statRow) add(md metastorage.MessageMetadata, now time.Time) {
	r.Count++
	r.Size += md.Size
	if c := md.Created; !c.IsZero() {
		if r.Oldest == nil || c.Before(*r.Oldest) {
			r.Oldest = &c
		}
		if r.Newest == nil || c.After(*r.Newest) {
			r.Newest = &c
		}
	}
	r.Ages[ageColumn(now.Sub(md.Created))]++
}

// grouping says how stat groups messages into the rows of its age table.
type grouping struct {
	by     string // as given
	header string // the header name, or "" to group by state
	domain bool   // group by the domain of an address in the header
}

func parseGrouping(by string) (grouping, error) {
	switch kind, name, _ := strings.Cut(by, ":"); {
	case by == "state":
		return grouping{by: by}, nil
	case (kind == "header" || kind == "domain") && name != "":
		return grouping{by: by, header: name, domain: kind == "domain"}, nil
	}
	return grouping{}, usagef("--by %q: want state, header:NAME or domain:NAME", by)
}

// key returns the row of md.
func (g grouping) key(md metastorage.MessageMetadata) string {
	if g.header == "" {
		return md.State.String()
	}
	v := lookupHeader(md.Headers, g.header)
	if g.domain {
		v = domainOf(v)
	}
	if v == "" {
		return "(none)"
	}
	return v
}

// lookupHeader returns the header name of h, matching the name without
// regard to case.
func lookupHeader(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// domainOf returns the lower-case domain of the first address in v.
func domainOf(v string) string {
	v, _, _ = strings.Cut(v, ",")
	v = strings.TrimSpace(v)
	if i := strings.LastIndex(v, "<"); i >= 0 {
		v = strings.TrimSuffix(v[i+1:], ">")
	}
	if i := strings.LastIndex(v, "@"); i >= 0 {
		return strings.ToLower(strings.TrimSpace(v[i+1:]))
	}
	return ""
}

func statCmd() *command {
	var dir *string
	var asJSON *bool
	var by *string
	return &command{
		name:    "stat",
		args:    "[flags] [STATE...]",
		summary: "Show counts, sizes and ages of the messages per state",
		detail: `
For each state (all when none is named): the number of messages, their total
size and the oldest and newest creation time; then a table of message ages
like qshape's, with columns 5m 10m 20m 40m 80m 160m 320m 640m 1280m 1280m+
(a message of age 7m counts in 10m). With --by header:NAME the age table's
rows are the values of that header instead of the states; domain:NAME takes
the domain of the address in the header.

The age is measured from Created to now ($SPOOLMETA_NOW, in RFC 3339, fixes
now for reproducible reports). Times are in the local zone. stat only reads
the directory. Message files that cannot be read or are not valid metadata
are left out of the tables, named on stderr and counted, and the exit status
is 1; fsck says more. With --json, each row's age_columns names its ages.

Examples:

  spoolmeta stat
  spoolmeta -d /var/spool/queue/meta stat deferred hold
  spoolmeta stat --by domain:to deferred
  spoolmeta stat --json | jq 'select(.key == "deferred") | .count'`,
		setFlags: func(fs *flag.FlagSet) {
			dir = dirFlag(fs)
			asJSON = fs.Bool("json", false, "print one JSON object per row")
			by = fs.String("by", "state", "group the age table by `state`, header:NAME or domain:NAME")
		},
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			g, err := parseGrouping(*by)
			if err != nil {
				return err
			}
			states, err := parseStates(args)
			if err != nil {
				return err
			}
			sk := newSkipLog(e.stderr, "stat")
			b, err := openReadOnlyLogged(e, metadataDir(e, *dir), sk)
			if err != nil {
				return err
			}
			defer b.Close()
			if err := runStat(e, b, states, g, *asJSON); err != nil {
				return err
			}
			return sk.summary("", "", true)
		},
	}
}

func runStat(e *env, b metastorage.Backend, states []metastorage.QueueState, g grouping, asJSON bool) error {
	now := e.now()
	perState := make([]*statRow, len(states))
	groups := map[string]*statRow{}
	for i, s := range states {
		perState[i] = newStatRow("state", s.String())
		err := eachMessage(context.Background(), b, s, func(md metastorage.MessageMetadata) error {
			perState[i].add(md, now)
			if g.header != "" {
				k := g.key(md)
				r := groups[k]
				if r == nil {
					r = newStatRow(g.by, k)
					groups[k] = r
				}
				r.add(md, now)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	ageRows := perState
	if g.header != "" {
		ageRows = sortedGroups(groups)
	}
	if asJSON {
		return writeStatJSON(e.stdout, perState, ageRows, g.header != "")
	}
	if err := writeStateTable(e.stdout, perState); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	return writeAgeTable(e.stdout, g.by, ageRows)
}

func newStatRow(by, key string) *statRow {
	return &statRow{By: by, Key: key, Ages: make([]int64, len(ageBuckets)+1), AgeColumns: ageColumnNames()}
}

// sortedGroups returns the rows by count, largest first, then by key.
func sortedGroups(groups map[string]*statRow) []*statRow {
	rows := make([]*statRow, 0, len(groups))
	for _, r := range groups {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *statRow) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Key, b.Key))
	})
	return rows
}

// eachMessage calls fn for every message in state s, streaming.
func eachMessage(ctx context.Context, b metastorage.Backend, s metastorage.QueueState, fn func(metastorage.MessageMetadata) error) error {
	it, err := b.NewMessageIterator(ctx, s, 256)
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		md, ok, err := it.Next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return it.Close()
		}
		if err := fn(md); err != nil {
			return err
		}
	}
}

func writeStatJSON(w io.Writer, perState, ageRows []*statRow, grouped bool) error {
	rows := perState
	if grouped {
		rows = append(slices.Clip(rows), ageRows...)
	}
	for _, r := range rows {
		if err := writeJSON(w, r); err != nil {
			return err
		}
	}
	return nil
}

func writeStateTable(w io.Writer, rows []*statRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "STATE\tCOUNT\tSIZE\tOLDEST\tNEWEST\t\n")
	total := newStatRow("state", "TOTAL")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", r.Key, r.Count, humanSize(r.Size), optTime(r.Oldest), optTime(r.Newest))
		merge(total, r)
	}
	fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", total.Key, total.Count, humanSize(total.Size), optTime(total.Oldest), optTime(total.Newest))
	return tw.Flush()
}

func writeAgeTable(w io.Writer, by string, rows []*statRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	head := strings.ToUpper(by)
	fmt.Fprintf(tw, "%s\tT\t", head)
	for _, d := range ageBuckets {
		fmt.Fprintf(tw, "%dm\t", int(d.Minutes()))
	}
	fmt.Fprintf(tw, "%dm+\t\n", int(ageBuckets[len(ageBuckets)-1].Minutes()))
	total := newStatRow(by, "TOTAL")
	for _, r := range rows {
		merge(total, r)
	}
	for _, r := range append([]*statRow{total}, rows...) {
		fmt.Fprintf(tw, "%s\t%d\t", r.Key, r.Count)
		for _, n := range r.Ages {
			fmt.Fprintf(tw, "%d\t", n)
		}
		fmt.Fprint(tw, "\n")
	}
	return tw.Flush()
}

// merge adds the counts of r to total.
func merge(total, r *statRow) {
	total.Count += r.Count
	total.Size += r.Size
	if r.Oldest != nil && (total.Oldest == nil || r.Oldest.Before(*total.Oldest)) {
		total.Oldest = r.Oldest
	}
	if r.Newest != nil && (total.Newest == nil || r.Newest.After(*total.Newest)) {
		total.Newest = r.Newest
	}
	for i, n := range r.Ages {
		total.Ages[i] += n
	}
}

func optTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return shortTime(*t)
}
