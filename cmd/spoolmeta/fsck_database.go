package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spoolmeta/spoolmeta/postgres"
)

// checkDatabase is fsck on a database: it checks the schema version and
// the counters against the rows, and with repair migrates an older schema
// and sets the counters to the rows.
func checkDatabase(e *env, loc string, repair, asJSON bool) error {
	ctx := context.Background()
	var findings []finding
	mode := modeReadOnly
	if repair {
		mode = modeWritable
	}
	l, err := openLocation(ctx, loc, mode, logger(e.stderr))
	if repair && errors.Is(err, postgres.ErrSchemaOutdated) {
		findings = append(findings, finding{Class: "damage", Kind: "schema-version", Path: "schema_version",
			Detail: fmt.Sprintf("%v", errors.Unwrap(err)), Action: fmt.Sprintf("migrated to version %d", postgres.SchemaVersion), Repaired: true})
		l, err = openLocation(ctx, loc, modeCreate, logger(e.stderr))
	}
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := l.stateCounts(ctx)
	if err != nil {
		return err
	}
	var total int64
	for _, c := range n {
		total += c
	}
	fmt.Fprintf(e.stderr, "fsck: checking %d messages in %s\n", total, l.name)
	r, err := l.pg.Check(ctx, repair)
	if err != nil {
		return fmt.Errorf("check %s: %w", l.name, redactErr(err, loc))
	}
	findings = append(findings, databaseFindings(r)...)
	return report(e, "", findings, asJSON)
}

// databaseFindings returns the findings of a check report.
func databaseFindings(r postgres.CheckReport) []finding {
	var fs []finding
	if r.CounterRows == 0 {
		fs = append(fs, finding{Class: "damage", Kind: "no-counters", Path: "counts",
			Detail: "the counts table has no rows; restore the schema or copy the spool to a new one"})
	}
	if r.MissingCounterRows > 0 {
		f := finding{Class: "damage", Kind: "counter-rows", Path: "counts",
			Detail: fmt.Sprintf("%d counter rows missing; the writes through them change no counter", r.MissingCounterRows)}
		if r.Repaired {
			f.Action, f.Repaired = "created again", true
		}
		fs = append(fs, f)
	}
	for _, c := range r.States {
		if !c.Damaged() {
			continue
		}
		f := finding{Class: "damage", Kind: "count", Path: "counts/" + c.State.String(),
			Detail: fmt.Sprintf("the counters say %d messages, the rows %d", c.Counters, c.Rows)}
		if r.Repaired {
			f.Action, f.Repaired = fmt.Sprintf("set to %d", c.Rows), true
		}
		fs = append(fs, f)
	}
	return fs
}
