package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
)

// benchRun is one row of the benchmark: a workload in a mode.
type benchRun struct {
	workload string
	mode     string // a metafs.Mode's name, or one of the calibrations (calDurable...)
	workers  int
	messages int
}

// benchResult is the measurement of one benchRun, and its JSON form.
type benchResult struct {
	Workload  string      `json:"workload"`
	Mode      string      `json:"mode"`
	Workers   int         `json:"workers"`
	Messages  int         `json:"messages"`
	Seconds   float64     `json:"seconds"`
	MsgPerSec float64     `json:"msg_per_sec"`
	OpsPerSec float64     `json:"ops_per_sec"`
	P50Micros float64     `json:"p50_us"`
	P99Micros float64     `json:"p99_us"`
	PeakHeap  uint64      `json:"peak_heap_bytes"`
	Ratio     *float64    `json:"ratio_to_calibration"`
	Rounds    int         `json:"rounds,omitempty"` // the rounds it is the median of, if more than one
	Note      string      `json:"note,omitempty"`
	Stats     *benchStats `json:"stats,omitempty"`
}

// benchStats is the JSON form of metafs.Stats.
type benchStats struct {
	Writes          int64   `json:"writes"`
	Deletes         int64   `json:"deletes"`
	Conflicts       int64   `json:"conflicts"`
	FileSyncs       int64   `json:"file_syncs"`
	DirSyncRequests int64   `json:"dir_sync_requests"`
	DirSyncs        int64   `json:"dir_syncs"`
	JournalBytes    int64   `json:"journal_bytes"`
	JournalSyncs    int64   `json:"journal_syncs"`
	Checkpoints     int64   `json:"checkpoints"`
	Flushes         int64   `json:"flushes"`
	MeanGroup       float64 `json:"mean_group_commit"`
	Errors          int64   `json:"errors"`
	RecoveryActions int64   `json:"recovery_actions"`
	CorruptFiles    int64   `json:"corrupt_files"`
}

func toBenchStats(s metafs.Stats) *benchStats {
	var errs int64
	for _, o := range []metafs.Outcomes{s.Store, s.Get, s.Update, s.Delete, s.Move, s.List} {
		errs += o.Error
	}
	return &benchStats{Writes: s.Writes, Deletes: s.Deletes, Conflicts: s.Conflicts, FileSyncs: s.FileSyncs,
		DirSyncRequests: s.DirSyncRequests, DirSyncs: s.DirSyncs, JournalBytes: s.JournalBytes, JournalSyncs: s.JournalSyncs,
		Checkpoints: s.Checkpoints, Flushes: s.Flushes, MeanGroup: s.MeanGroupCommit(), Errors: errs,
		RecoveryActions: s.RecoveryActions, CorruptFiles: s.CorruptFiles}
}

// workloadSpec describes a workload and its default size per mode.
type workloadSpec struct {
	name     string
	workers  int
	messages map[string]int // by mode; "" is every other mode
	perMode  bool           // runs in each mode by default, not in standard only
	asked    bool           // runs only when --workload or --keep names it
}

// The workloads and their defaults, chosen so that the whole default run
// takes about a minute on a 2-core machine with a slow shared disk.
var workloadSpecs = []workloadSpec{
	{name: "calibrate", workers: 64, messages: map[string]int{calDurable: 1000, calFloor: 1000, calNoSync: 2000, calOneDir: 2000}},
	{name: "lifecycle", workers: 64, messages: map[string]int{"standard": 1000, "hybrid": 1000, "": 2000}, perMode: true},
	{name: "store", workers: 64, messages: map[string]int{"standard": 1000, "hybrid": 1000, "": 4000}, perMode: true},
	{name: "claim", workers: 16, messages: map[string]int{"standard": 300, "hybrid": 300, "": 1000}, perMode: true},
	{name: "iterate", workers: 1, messages: map[string]int{"": 20000}},
	{name: "get", workers: 16, messages: map[string]int{"": 20000}},
	{name: "list", workers: 1, messages: map[string]int{"": 20000}},
	{name: "open", workers: 1, messages: map[string]int{"": 20000}},
	{name: "spool", workers: 16, messages: map[string]int{"": 400}, asked: true},
	{name: "rescan", workers: 1, messages: map[string]int{"": 20000}, asked: true},
}

func specOf(name string) *workloadSpec {
	for i := range workloadSpecs {
		if workloadSpecs[i].name == name {
			return &workloadSpecs[i]
		}
	}
	return nil
}

var benchModes = []string{"standard", "hybrid", "performance"}

// benchOptions are the flags of bench.
type benchOptions struct {
	dir, workloads, modes, keep *string
	workers, messages, rounds   *int
	diskLoad                    *int
	json                        *bool
}

func benchCmd() *command {
	var o benchOptions
	return &command{
		name:    "bench",
		args:    "[flags]",
		summary: "Measure the speed of the backend on this disk",
		detail: `
Runs workloads on a fresh temporary directory (under --dir, to choose the
disk), removed at the end or on an interrupt, with progress on stderr, and
prints a table on stdout: workload, mode, workers, messages, msg/s, ops/s,
p50 and p99 latency of one operation, peak heap, and the ratio to the
calibration of the same run; then the backend's counters of each row.
Messages are of realistic size: three headers and a last error, about 350
bytes of JSON.

Workloads:

  calibrate  the same disk without the library: per message the system calls
             of a durable lifecycle, each syncing on its own (mode durable);
             the same with the fewest fsyncs that keep each call durable in a
             layout of one file per message (mode floor: a state change
             syncs the new directory only, the delete every directory; its
             ratio to durable is the most such a design can gain); the same
             calls without fsync (mode no-fsync); those with each message in
             one directory at every instant, as Performance mode keeps it
             (mode one-dir: a state change renames the old file into the
             new directory, swaps the new record in and unlinks the old;
             its ratio is to no-fsync); and, beside the read
             workloads, the bare openat, fstat, read and close of each of
             their N files by 8 goroutines, without decoding (mode read)
  lifecycle  per message StoreMeta(incoming), MoveToState(incoming->active),
             GetMeta, UpdateMeta(deferred), MoveToState(deferred->active),
             DeleteMeta; msg/s is the main figure, its ratio is to
             calibrate durable for standard and hybrid, to no-fsync for
             performance
  store      W workers store N new messages in incoming
  claim      N messages in incoming, 4 goroutines race to move each to active;
             checks exactly N winners
  iterate    one NewMessageIterator pass (batch 100) over N deferred messages
  get        W workers GetMeta random messages, 4N calls over N messages
  list       ListMessages(deferred, limit 100, sort created) over N messages,
             five times: the first reads every file, the later ones find
             the sort keys kept; and the same page by ID (the note gives
             the three times; latencies are the sorted pages'); the ratio of
             iterate, get (calls/s) and list
             (messages scanned/s) is to calibrate read; these three are
             timed from when the Backend has counted its messages
  open       open a Backend on N messages: the time until it returns and
             until its counts are exact
  spool      W workers store N messages as a queue leaves them: in every
             state, created within the last day, with headers and errors
             (only when named, or with --keep)
  rescan     passes of the iterator over N deferred messages, as a
             queue's scheduler makes them: 20 over unchanged messages,
             then 20 each after three changes (two updates by this
             process, a hold by another spoolmeta process); the note gives
             the CPU of this process per pass and per message, and its
             heap (only when named)

On a database (--dir postgres://USER@HOST:PORT/DB?sslmode=...; the
password from $PGPASSWORD or ~/.pgpass), bench runs in a schema of its own,
dropped at the end or on an interrupt, the workloads

  calibrate  mode sql: the statements of a lifecycle (insert, update the
             state, select, update, update the state, delete) on the same
             tables, prepared, through the driver without the library, each
             write changing its worker's state counter row as it goes
  lifecycle  mode postgres: the lifecycle through the postgres backend;
             its ratio is to calibrate sql at the same number of workers

at 16 and 64 workers (or --workers), each with connections of its own, as
many as workers.

--keep DIR runs the spool workload (and the others named) and leaves its
spool in DIR, which must not exist, to try the other commands on:

  spoolmeta bench --keep /tmp/spool && spoolmeta -d /tmp/spool stat

--disk-load MIB writes and fsyncs 1 MiB files beside the workloads, at
most MIB a second, until the last run ends: another process writing to
the same disk, as on a mail or job server. What it wrote goes to stderr.

The table gives MSG/S (messages per second of the run), OPS/S (backend
calls per second), P50 and P99 (latency of one call), PEAK HEAP and RATIO:
the row's rate over that of the calibration it is compared with (see the
workloads), so 1.00 is as fast as the bare system calls. A "-" marks a
figure that means nothing for the row.

By default lifecycle, store and claim run in each mode and the read
workloads in standard mode; --workload and --mode (comma-separated) select,
--workers and --messages override the defaults of every selected workload.
On a noisy disk, --rounds N runs the whole selection N times, every other
round in reverse order so that no row always follows the same one, and
prints for each row and column the median of its rounds, each column on
its own (ratios too, each taken within its round); peak heap is the
largest of the rounds, counters and notes are the first round's.

Examples:

  spoolmeta bench
  spoolmeta bench --dir /var/spool/queue --workload lifecycle,calibrate
  spoolmeta bench --workload iterate --messages 100000 --json
  spoolmeta bench --workload calibrate,lifecycle --mode standard --rounds 10
  spoolmeta bench --dir 'postgres://spool@db/mail?sslmode=require' --rounds 3`,
		setFlags: func(fs *flag.FlagSet) {
			o.dir = fs.String("dir", "", "create the temporary directory under `DIR` (default: the system's), or a postgres:// URL")
			o.keep = fs.String("keep", "", "run the spool workload and keep its spool in `DIR`, which must not exist")
			o.workloads = fs.String("workload", "", "run only these workloads (`LIST`, comma-separated)")
			o.modes = fs.String("mode", "", "run only in these modes (`LIST` of standard, hybrid, performance)")
			o.workers = fs.Int("workers", 0, "the number of concurrent workers (`N`; 0: each workload's default)")
			o.messages = fs.Int("messages", 0, "the number of messages (`N`; 0: each workload's default)")
			o.rounds = fs.Int("rounds", 1, "run every row `N` times, every other round in reverse order, and print the medians")
			o.json = fs.Bool("json", false, "print one JSON object per row")
			o.diskLoad = fs.Int("disk-load", 0, "while the workloads run, write and fsync 1 MiB files beside them at `MIB` per second")
		},
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("bench takes no arguments")
			}
			if isDatabase(*o.dir) {
				return runBenchPG(e, o)
			}
			plan, err := benchPlan(o)
			if err != nil {
				return err
			}
			return runBench(e, o, plan)
		},
	}
}

// keepDir returns the value of --keep, or "".
func (o benchOptions) keepDir() string {
	if o.keep == nil {
		return ""
	}
	return *o.keep
}

// benchPlan returns the rows to run, calibration first.
func benchPlan(o benchOptions) ([]benchRun, error) {
	names, err := splitList(*o.workloads, "workload", func(n string) bool { return specOf(n) != nil })
	if err != nil {
		return nil, err
	}
	modes, err := splitList(*o.modes, "mode", func(n string) bool { return slices.Contains(benchModes, n) })
	if err != nil {
		return nil, err
	}
	if *o.workers < 0 || *o.messages < 0 {
		return nil, usagef("--workers and --messages must not be negative")
	}
	if *o.rounds < 1 {
		return nil, usagef("--rounds must be at least 1")
	}
	if o.diskLoad != nil && *o.diskLoad < 0 {
		return nil, usagef("--disk-load must not be negative")
	}
	explicitModes := len(modes) > 0
	if !explicitModes {
		modes = benchModes
	}
	keep := o.keepDir()
	switch {
	case keep != "" && len(names) == 0:
		names = []string{"spool"}
	case keep != "" && !slices.Contains(names, "spool"):
		return nil, usagef("--keep keeps the spool of the spool workload: add spool to --workload")
	case len(names) == 0:
		for _, s := range workloadSpecs {
			if !s.asked {
				names = append(names, s.name)
			}
		}
	}
	if keep != "" && *o.rounds > 1 {
		return nil, usagef("--keep keeps one spool: it needs --rounds 1")
	}
	var plan []benchRun
	if slices.Contains(names, "calibrate") || slices.Contains(names, "lifecycle") {
		plan = append(plan, calibrationRuns(modes)...)
	}
	for _, n := range names {
		s := specOf(n)
		if n == "calibrate" {
			continue
		}
		for _, m := range modes {
			if !s.perMode && !explicitModes && m != "standard" {
				continue
			}
			plan = append(plan, benchRun{workload: n, mode: m, workers: s.workers, messages: s.size(m)})
		}
	}
	for i := range plan {
		if *o.workers > 0 && plan[i].workers > 1 { // iterate, list and open are one caller
			plan[i].workers = *o.workers
		}
		if *o.messages > 0 {
			plan[i].messages = *o.messages
		}
		plan[i].workers = max(1, min(plan[i].workers, plan[i].messages))
	}
	return withReadCalibration(plan), nil
}

// readCalibrationWorkers is the number of goroutines of calibrate read.
const readCalibrationWorkers = 8

// withReadCalibration puts a calibrate read row of each size before the
// first read workload of that size.
func withReadCalibration(plan []benchRun) []benchRun {
	var out []benchRun
	done := map[int]bool{}
	for _, r := range plan {
		if isReadWorkload(r.workload) && !done[r.messages] {
			done[r.messages] = true
			out = append(out, benchRun{workload: "calibrate", mode: calRead, workers: min(readCalibrationWorkers, r.messages), messages: r.messages})
		}
		out = append(out, r)
	}
	return out
}

// isReadWorkload reports whether the workload reads the seeded files,
// and so has a ratio to calibrate read.
func isReadWorkload(name string) bool {
	return name == "iterate" || name == "get" || name == "list"
}

// calibrationRuns returns the calibrations the modes are compared with.
func calibrationRuns(modes []string) []benchRun {
	s := specOf("calibrate")
	var runs []benchRun
	if slices.Contains(modes, "standard") || slices.Contains(modes, "hybrid") {
		for _, m := range []string{calDurable, calFloor} {
			runs = append(runs, benchRun{workload: "calibrate", mode: m, workers: s.workers, messages: s.size(m)})
		}
	}
	if slices.Contains(modes, "performance") {
		for _, m := range []string{calNoSync, calOneDir} {
			runs = append(runs, benchRun{workload: "calibrate", mode: m, workers: s.workers, messages: s.size(m)})
		}
	}
	return runs
}

func (s *workloadSpec) size(mode string) int {
	if n, ok := s.messages[mode]; ok {
		return n
	}
	return s.messages[""]
}

// splitList splits a comma-separated flag value and checks each item.
func splitList(v, what string, valid func(string) bool) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if !valid(item) {
			return nil, usagef("unknown %s %q", what, item)
		}
		out = append(out, item)
	}
	return out, nil
}

func runBench(e *env, o benchOptions, plan []benchRun) (err error) {
	keep := o.keepDir()
	if keep != "" {
		if _, err := os.Lstat(keep); !errors.Is(err, fs.ErrNotExist) {
			return usagef("--keep %s: it exists; --keep makes a new spool", keep)
		}
	}
	root, err := os.MkdirTemp(*o.dir, "spoolmeta-bench-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(root)
	kept := false
	defer func() {
		if keep != "" && !kept {
			os.RemoveAll(keep) // a spool cut short
		}
	}()
	rounds := *o.rounds
	fmt.Fprintf(e.stderr, "bench: %d runs in %s\n", len(plan)*rounds, root)
	if o.diskLoad != nil && *o.diskLoad > 0 {
		load := filepath.Join(root, "disk-load")
		if err := os.Mkdir(load, 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		d := startDiskLoad(load, *o.diskLoad)
		defer func() {
			msg, lerr := d.end()
			if lerr != nil && err == nil {
				err = fmt.Errorf("bench: %w", lerr)
			}
			if lerr == nil {
				fmt.Fprintf(e.stderr, "bench: %s\n", msg)
			}
		}()
	}
	// An interrupt stops the run under way and removes the directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prepared := map[int]string{} // messages -> directory of the read workloads' data
	all, err := runRounds(ctx, e, plan, rounds, setRatios, func(k, i int, r benchRun) (benchResult, error) {
		dir := filepath.Join(root, fmt.Sprintf("run-%02d-%02d", k, i))
		keepThis := keep != "" && r.workload == "spool" && !kept
		if keepThis {
			dir = keep
		}
		res, err := runOne(ctx, dir, r, prepared)
		if err != nil {
			return res, err
		}
		if keepThis {
			kept = true
			fmt.Fprintf(e.stderr, "bench: kept the spool of %d messages in %s; try: spoolmeta -d %s stat\n", r.messages, keep, keep)
		} else if prepared[r.messages] != dir {
			// Later runs should not find the disk fuller for it.
			if err := os.RemoveAll(dir); err != nil {
				return res, err
			}
		}
		return res, nil
	})
	if err != nil {
		return err
	}
	return printResults(e, *o.json, medians(all), writeBenchTables)
}

// printResults prints results as one JSON object a line, or with table.
func printResults(e *env, asJSON bool, results []benchResult, table func(io.Writer, []benchResult) error) error {
	if !asJSON {
		return table(e.stdout, results)
	}
	for _, r := range results {
		if err := writeJSON(e.stdout, r); err != nil {
			return err
		}
	}
	return nil
}

// runRounds runs the plan rounds times, every other round in reverse
// order, with progress on stderr, and sets each round's ratios. It stops at
// the first row that fails, or at an interrupt (ctx done).
func runRounds(ctx context.Context, e *env, plan []benchRun, rounds int, ratios func([]benchResult),
	run func(k, i int, r benchRun) (benchResult, error)) ([][]benchResult, error) {
	all := make([][]benchResult, rounds)
	n := 0
	for k := range rounds {
		all[k] = make([]benchResult, len(plan))
		for j := range plan {
			i := j
			if k%2 == 1 {
				i = len(plan) - 1 - j
			}
			r := plan[i]
			n++
			fmt.Fprintf(e.stderr, "bench: [%d/%d] %s %s: %d workers, %d messages ... ", n, len(plan)*rounds, r.workload, r.mode, r.workers, r.messages)
			res, err := run(k, i, r)
			if ctx.Err() != nil {
				fmt.Fprintln(e.stderr, "interrupted")
				return nil, errors.New("interrupted")
			}
			if err != nil {
				fmt.Fprintln(e.stderr, "failed")
				return nil, fmt.Errorf("bench %s %s: %w", r.workload, r.mode, err)
			}
			fmt.Fprintf(e.stderr, "%.0f msg/s in %s\n", res.MsgPerSec, round(time.Duration(res.Seconds*float64(time.Second))))
			all[k][i] = res
		}
		ratios(all[k])
	}
	return all, nil
}

// runOne prepares and measures one row in dir.
func runOne(ctx context.Context, dir string, r benchRun, prepared map[int]string) (benchResult, error) {
	res := benchResult{Workload: r.workload, Mode: r.mode, Workers: r.workers, Messages: r.messages}
	data, err := prepare(ctx, dir, r, prepared)
	if err != nil {
		return res, fmt.Errorf("prepare: %w", err)
	}
	var lat latencies
	var ops int
	var stats metafs.Stats
	heap := startHeap()
	start := time.Now()
	restart := func() { start = time.Now() }
	switch {
	case r.workload == "calibrate" && r.mode == calRead:
		ops, err = benchReadCalibrate(ctx, data, r, &lat)
	case r.workload == "calibrate":
		ops, err = benchCalibrate(ctx, dir, r, &lat)
	case r.workload == "open":
		ops, res.Note, stats, err = benchOpen(ctx, factory(data, r.mode), r, &lat)
	default:
		ops, res.Note, stats, err = runWithBackend(ctx, factory(data, r.mode), r, &lat, restart)
	}
	elapsed := time.Since(start)
	res.PeakHeap = heap.peak()
	if err != nil {
		return res, err
	}
	if r.workload != "calibrate" {
		res.Stats = toBenchStats(stats)
	}
	res.Seconds = elapsed.Seconds()
	res.OpsPerSec = float64(ops) / elapsed.Seconds()
	res.MsgPerSec = float64(r.messages) / elapsed.Seconds()
	if r.workload == "list" {
		// Each call scans every message.
		res.MsgPerSec *= float64(ops)
	}
	p50, p99 := lat.percentiles()
	res.P50Micros, res.P99Micros = float64(p50)/1e3, float64(p99)/1e3
	return res, nil
}

// prepare creates what the workload needs before it is measured and
// returns the directory to open.
func prepare(ctx context.Context, dir string, r benchRun, prepared map[int]string) (string, error) {
	switch {
	case isReadWorkload(r.workload) || r.workload == "open" || r.mode == calRead:
		if d, ok := prepared[r.messages]; ok {
			return d, nil
		}
		if err := fillDeferred(ctx, dir, r.messages); err != nil {
			return "", err
		}
		prepared[r.messages] = dir
	case r.workload == "claim":
		if err := fillIncoming(ctx, dir, r.messages); err != nil {
			return "", err
		}
	case r.workload == "rescan": // changes its messages: not shared
		if err := fillDeferred(ctx, dir, r.messages); err != nil {
			return "", err
		}
	default:
		return dir, nil
	}
	// The seed is written without fsync; its writeback must not run
	// beside the measurement.
	return dir, flushSeed(dir)
}

func factory(dir, mode string) *metafs.Factory {
	f := metafs.NewFactory(dir).WithLogger(logger(io.Discard))
	switch mode {
	case "performance":
		return f.WithDisableSync(true)
	case "hybrid":
		return f.WithBatchSync(true)
	}
	return f
}

// runWithBackend opens the backend and runs a workload that uses it. The
// time to open is part of the measurement of the writes, but small; the
// reads are measured from when the backend has counted its messages
// (restart starts the clock again).
func runWithBackend(ctx context.Context, f *metafs.Factory, r benchRun, lat *latencies, restart func()) (int, string, metafs.Stats, error) {
	read := isReadWorkload(r.workload) || r.workload == "rescan"
	if read {
		// The seeded directory is clean: measure the reads, not a
		// recovery scan reading every file beside them.
		f = f.WithBackgroundRecovery(false)
	}
	b, err := f.Open()
	if err != nil {
		return 0, "", metafs.Stats{}, err
	}
	defer b.Close()
	if read {
		// Nor the count of the directories that open starts (the open
		// workload measures it).
		if err := b.WaitCounts(ctx); err != nil {
			return 0, "", metafs.Stats{}, err
		}
		restart()
	}
	var ops int
	var note string
	switch r.workload {
	case "store":
		ops, err = benchStore(ctx, b, r, lat)
	case "spool":
		ops, err = benchSpool(ctx, b, r, lat)
	case "lifecycle":
		ops, err = benchLifecycle(ctx, b, r, lat)
	case "claim":
		ops, err = benchClaim(ctx, b, r, lat)
	case "iterate":
		ops, note, err = benchIterate(ctx, b, r, lat)
	case "get":
		ops, note, err = benchGet(ctx, b, r, lat)
	case "list":
		ops, note, err = benchList(ctx, b, r, lat)
	case "rescan":
		ops, note, err = benchRescan(ctx, b, r, lat)
	default:
		err = fmt.Errorf("unknown workload %q", r.workload)
	}
	return ops, note, b.Stats(), err
}

// setRatios sets the ratio of each row to the calibration it is compared
// with: for lifecycle, durable in standard and hybrid mode and no-fsync in
// performance mode; for calibrate floor, durable; for calibrate one-dir,
// no-fsync; for iterate, get and list, calibrate read of the same size.
// Other calibration rows get 1.
func setRatios(results []benchResult) {
	calib := map[string]float64{}
	reads := map[int]float64{} // messages -> files read per second
	for _, r := range results {
		switch {
		case r.Workload != "calibrate":
		case r.Mode == calRead:
			reads[r.Messages] = r.MsgPerSec
		default:
			calib[r.Mode] = r.MsgPerSec
		}
	}
	for i := range results {
		r := &results[i]
		rate, base := r.MsgPerSec, 0.0
		switch {
		case r.Workload == "calibrate" && r.Mode == calFloor:
			base = calib[calDurable]
		case r.Workload == "calibrate" && r.Mode == calOneDir:
			base = calib[calNoSync]
		case r.Workload == "calibrate":
			base = r.MsgPerSec
		case r.Workload == "lifecycle" && r.Mode == "performance":
			base = calib[calNoSync]
		case r.Workload == "lifecycle":
			base = calib[calDurable]
		case r.Workload == "get":
			rate, base = r.OpsPerSec, reads[r.Messages]
		case isReadWorkload(r.Workload):
			base = reads[r.Messages]
		}
		if base > 0 {
			v := rate / base
			r.Ratio = &v
		}
	}
}

// writeRates writes the note on medians and the table of rates; cells
// gives a row's MSG/S, OPS/S, P50 and P99.
func writeRates(w io.Writer, results []benchResult, cells func(benchResult) (msgs, ops, p50, p99 string)) error {
	if len(results) > 0 && results[0].Rounds > 1 {
		fmt.Fprintf(w, "Each figure is the median of %d rounds (ratios taken within each round), peak heap the largest.\n\n", results[0].Rounds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "WORKLOAD\tMODE\tWORKERS\tMESSAGES\tMSG/S\tOPS/S\tP50\tP99\tPEAK HEAP\tRATIO\t\n")
	for _, r := range results {
		ratio := "-"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		msgs, ops, p50, p99 := cells(r)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Workload, r.Mode, r.Workers, r.Messages,
			msgs, ops, p50, p99, humanSize(int64(r.PeakHeap)), ratio)
	}
	return tw.Flush()
}

// rates are a row's cells as measured.
func rates(r benchResult) (msgs, ops, p50, p99 string) {
	return fmt.Sprintf("%.0f", r.MsgPerSec), fmt.Sprintf("%.0f", r.OpsPerSec), micros(r.P50Micros), micros(r.P99Micros)
}

func writeBenchTables(w io.Writer, results []benchResult) error {
	rounds := 0
	if len(results) > 0 {
		rounds = results[0].Rounds
	}
	err := writeRates(w, results, func(r benchResult) (msgs, ops, p50, p99 string) {
		msgs, ops, p50, p99 = rates(r)
		switch r.Workload {
		case "open": // one call: its time is the figure, in P50
			msgs, ops, p99 = "-", "-", "-"
		case "list": // each call scans every message: calls/s is the figure
			msgs = "-"
		case "iterate": // most calls of Next return a message read ahead
			p50, p99 = "-", "-"
		}
		return msgs, ops, p50, p99
	})
	if err != nil {
		return err
	}
	fmt.Fprint(w, "\nMSG/S: messages per second. OPS/S: backend calls per second. P50, P99: latency of one call.\n"+
		"RATIO: the row's rate over its calibration's (lifecycle to calibrate durable, or no-fsync in\n"+
		"performance mode; floor to durable; one-dir to no-fsync; iterate, get, list to calibrate read):\n"+
		"1.00 is as fast as the bare system calls. -: means nothing for the row. See spoolmeta help bench.\n")
	if rounds > 1 {
		fmt.Fprint(w, "\nBackend counters (metafs Stats) and notes, of the first round:\n")
	} else {
		fmt.Fprint(w, "\nBackend counters (metafs Stats) and notes:\n")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "WORKLOAD\tMODE\tWRITES\tDELETES\tCONFLICTS\tERRORS\tFILE SYNCS\tDIR SYNCS ASKED\tDIR SYNCS\tJOURNAL\tJOURNAL SYNCS\tCHECKPOINTS\tFLUSHES\tMEAN GROUP\t  NOTE\n")
	for _, r := range results {
		if r.Stats == nil {
			continue
		}
		s := r.Stats
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%.1f\t  %s\n", r.Workload, r.Mode, s.Writes, s.Deletes, s.Conflicts,
			s.Errors, s.FileSyncs, s.DirSyncRequests, s.DirSyncs, humanSize(s.JournalBytes), s.JournalSyncs, s.Checkpoints, s.Flushes, s.MeanGroup, r.Note)
	}
	return tw.Flush()
}

// micros formats a latency given in microseconds.
func micros(us float64) string {
	return round(time.Duration(us * 1e3)).String()
}
