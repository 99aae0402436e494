package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// finding is the JSON form of a metafs.Finding.
type finding struct {
	Class    string `json:"class"` // damage, expected or unknown
	Kind     string `json:"kind"`
	Path     string `json:"path"`
	Detail   string `json:"detail"`
	Action   string `json:"action,omitempty"`
	Repaired bool   `json:"repaired"`
}

func fsckCmd() *command {
	var dir *string
	var repair, asJSON *bool
	return &command{
		name:    "fsck",
		args:    "[flags]",
		summary: "Check the directory for what a crash leaves behind, and repair it",
		detail: `
Runs the backend's recovery scan as a report: orphaned temp files, changes a
crash interrupted, messages in two states, corrupt files, State fields that
disagree with their directory, message files it cannot read, names that are
not message files and stray lock files. Without --repair it only reads the
directory, and says what --repair would do; with --repair it fixes what
recovery fixes (safely while a queue runs on the directory) and says what it
did. Message files it cannot read (permission denied), names that are not
message files and stray lock files are reported and left alone.

Each finding has a class: damage (what a crash or a hand left wrong, which
--repair fixes), expected (what a live writer keeps on purpose: the
displaced records of Performance mode, removed once the file system is
synced) or unknown (entries that are not the backend's, left alone).

Prints one line per finding on stdout, its class first, paths relative to
the directory (absolute with --json), and a summary on stderr. Exit status:
0 no damage left, 1 damage left, 2 usage or I/O error; expected and unknown
findings are reported but do not make fsck fail.

On a database (-d postgres://...), fsck checks what can be damaged there:
the schema's version (an older one is migrated by --repair) and the
counters of each state against a count of its rows (--repair sets them to
the count, holding the queue's writes back for as long as it takes).

Examples:

  spoolmeta fsck
  spoolmeta fsck --repair
  spoolmeta fsck --json | jq -r .kind | sort | uniq -c`,
		setFlags: func(fs *flag.FlagSet) {
			dir = dirFlag(fs)
			repair = fs.Bool("repair", false, "repair what is found")
			asJSON = fs.Bool("json", false, "print one JSON object per finding")
		},
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("fsck takes no arguments")
			}
			loc := metadataDir(e, *dir)
			if isDatabase(loc) {
				return checkDatabase(e, loc, *repair, *asJSON)
			}
			if *repair {
				return runRepair(e, loc, *asJSON)
			}
			b, err := openReadOnly(e, loc)
			if err != nil {
				return err
			}
			defer b.Close()
			findings, err := check(e, b.fs, false)
			return reportChecked(e, b.name, findings, *asJSON, err)
		},
	}
}

// progressStep is how many directory entries fsck scans between two
// progress lines.
const progressStep = 50000

// progressPrinter returns a progress function for CheckProgress that
// writes a line to w each time another step entries have been scanned.
func progressPrinter(w io.Writer, step int) func(scanned int) {
	next := step
	return func(scanned int) {
		if scanned >= next {
			fmt.Fprintf(w, "fsck: %d entries scanned\n", scanned)
			next = scanned - scanned%step + step
		}
	}
}

// check runs the recovery scan of b, with progress on stderr.
func check(e *env, b *metafs.Backend, repair bool) ([]metafs.Finding, error) {
	ctx := context.Background()
	if err := b.WaitCounts(ctx); err != nil {
		return nil, err
	}
	var n int64
	for _, s := range metastorage.States() {
		n += b.GetStateCount(s)
	}
	fmt.Fprintf(e.stderr, "fsck: checking %d messages in %s\n", n, b.Dir())
	findings, err := b.CheckProgress(ctx, repair, progressPrinter(e.stderr, progressStep))
	if err != nil {
		err = fmt.Errorf("check %s: %w", b.Dir(), err)
	}
	return findings, err
}

// runRepair opens dir for writing, without the background recovery scan,
// and runs the scan with repair, so that it reports every finding.
func runRepair(e *env, dir string, asJSON bool) error {
	if err := checkMetadataDir(dir); err != nil {
		return err
	}
	b, err := metafs.NewFactory(dir).WithLogger(logger(e.stderr)).WithBackgroundRecovery(false).Open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer b.Close()
	findings, err := check(e, b, true)
	return reportChecked(e, b.Dir(), findings, asJSON, err)
}

// reportChecked reports the findings of a scan that ended with err: those
// it made before the error, and then the error, if there was one.
func reportChecked(e *env, dir string, findings []metafs.Finding, asJSON bool, err error) error {
	if err != nil && len(findings) == 0 {
		return err
	}
	fs := make([]finding, len(findings))
	for i, f := range findings {
		fs[i] = findingOf(f)
	}
	rerr := report(e, dir, fs, asJSON)
	if err == nil {
		return rerr
	}
	if rerr != nil && !errors.Is(rerr, errSilentPartial) {
		return errors.Join(err, rerr)
	}
	return err
}

// report prints findings and a summary, and returns errSilentPartial if
// damage is left unrepaired. Lines of text name paths relative to dir.
func report(e *env, dir string, findings []finding, asJSON bool) error {
	w := bufio.NewWriter(e.stdout)
	left := 0
	leftBy := make(map[string]int)
	var err error
	for _, f := range findings {
		if !f.Repaired {
			left++
			leftBy[f.Class]++
		}
		if werr := writeFinding(w, dir, f, asJSON); werr != nil && err == nil {
			err = werr
		}
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	damage := metafs.Damage.String()
	fmt.Fprintf(e.stderr, "fsck: %d findings, %d repaired, %d left", len(findings), len(findings)-left, left)
	if left > 0 {
		fmt.Fprintf(e.stderr, ": %d damage, %d expected, %d unknown",
			leftBy[damage], leftBy[metafs.Expected.String()], leftBy[metafs.Unknown.String()])
	}
	fmt.Fprintln(e.stderr)
	if leftBy[damage] > 0 {
		return errSilentPartial
	}
	return nil
}

// findingOf returns the finding f of a directory's check.
func findingOf(f metafs.Finding) finding {
	return finding{Class: f.Severity().String(), Kind: string(f.Kind), Path: f.Path, Detail: f.Detail, Action: f.Action, Repaired: f.Repaired}
}

func writeFinding(w *bufio.Writer, dir string, f finding, asJSON bool) error {
	if asJSON {
		return writeJSON(w, f)
	}
	p := f.Path
	if rel, err := filepath.Rel(dir, p); err == nil && dir != "" {
		p = rel
	}
	line := fmt.Sprintf("%-8s %-15s %s: %s", f.Class, f.Kind, p, f.Detail)
	if f.Action != "" {
		line += "; " + f.Action
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
