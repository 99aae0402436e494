package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// TestBenchSmoke runs every workload with tiny counts and checks the rows
// and that the temporary directory is removed.
func TestBenchSmoke(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	parent := t.TempDir()
	r := spoolmeta(t, "bench", "--dir", parent, "--messages", "20", "--workers", "4", "--json")
	r.expect(t, 0)
	rows := map[string]benchResult{}
	for _, l := range lines(r.stdout) {
		var res benchResult
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		rows[res.Workload+" "+res.Mode] = res
	}
	for _, w := range []string{"calibrate durable", "calibrate floor", "calibrate no-fsync", "calibrate one-dir", "calibrate read", "lifecycle standard", "lifecycle hybrid",
		"lifecycle performance", "store standard", "store performance", "claim standard", "claim performance",
		"iterate standard", "get standard", "list standard", "open standard"} {
		res, ok := rows[w]
		if !ok {
			t.Errorf("no row for %s:\n%s", w, r.stdout)
			continue
		}
		if res.Messages != 20 || res.MsgPerSec <= 0 || res.OpsPerSec <= 0 || res.PeakHeap == 0 {
			t.Errorf("%s: %+v", w, res)
		}
	}
	if lc := rows["lifecycle standard"]; lc.Ratio == nil || lc.Stats == nil || lc.Stats.Writes != 80 || lc.Stats.Deletes != 20 {
		t.Errorf("lifecycle standard: ratio %v, stats %+v; want a ratio, 80 writes and 20 deletes", lc.Ratio, lc.Stats)
	}
	for _, w := range []string{"calibrate floor", "calibrate one-dir", "iterate standard", "get standard", "list standard"} {
		if rows[w].Ratio == nil {
			t.Errorf("%s: no ratio to its calibration", w)
		}
	}
	if c := rows["claim standard"]; c.Stats == nil || c.Stats.Conflicts != 60 {
		t.Errorf("claim: want 60 conflicts (3 losers per message), got %+v", c.Stats)
	}
	if !strings.Contains(r.stderr, "[18/18] open standard: 1 workers, 20 messages") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("bench left %d entries in --dir", len(ents))
	}
}

// TestBenchTable checks the table of one workload and the usage errors.
func TestBenchTable(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	r := spoolmeta(t, "bench", "--dir", t.TempDir(), "--workload", "lifecycle", "--mode", "performance", "--messages", "20")
	r.expect(t, 0)
	out := lines(r.stdout)
	if !strings.HasPrefix(fields(out[0]), "WORKLOAD MODE WORKERS MESSAGES MSG/S OPS/S P50 P99 PEAK HEAP RATIO") ||
		!strings.HasPrefix(fields(out[1]), "calibrate no-fsync 20 20 ") || !strings.HasPrefix(fields(out[2]), "calibrate one-dir 20 20 ") ||
		!strings.HasPrefix(fields(out[3]), "lifecycle performance 20 20 ") {
		t.Errorf("bench table:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "Backend counters") {
		t.Errorf("no counters:\n%s", r.stdout)
	}
	for _, args := range [][]string{{"--workload", "nap"}, {"--mode", "turbo"}, {"--messages", "-1"}, {"--rounds", "0"}, {"extra"}} {
		spoolmeta(t, append([]string{"bench"}, args...)...).expect(t, 2)
	}
}

// TestBenchPlan checks which calibrations each selection runs, and where.
func TestBenchPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		workloads, modes string
		messages         int
		want             []string
	}{
		{"lifecycle", "standard", 0, []string{"calibrate durable 1000", "calibrate floor 1000", "lifecycle standard 1000"}},
		{"lifecycle", "performance", 0, []string{"calibrate no-fsync 2000", "calibrate one-dir 2000", "lifecycle performance 2000"}},
		{"iterate,list", "", 0, []string{"calibrate read 20000", "iterate standard 20000", "list standard 20000"}},
		{"open,get", "", 500, []string{"open standard 500", "calibrate read 500", "get standard 500"}},
		{"calibrate", "hybrid", 0, []string{"calibrate durable 1000", "calibrate floor 1000"}},
	}
	for _, tt := range tests {
		workloads, modes, dir := tt.workloads, tt.modes, ""
		workers, messages, rounds, asJSON := 0, tt.messages, 1, false
		plan, err := benchPlan(benchOptions{dir: &dir, workloads: &workloads, modes: &modes, workers: &workers, messages: &messages, rounds: &rounds, json: &asJSON})
		if err != nil {
			t.Fatalf("%s/%s: %v", tt.workloads, tt.modes, err)
		}
		var got []string
		for _, r := range plan {
			got = append(got, fmt.Sprintf("%s %s %d", r.workload, r.mode, r.messages))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s/%s: plan\n%q\nwant\n%q", tt.workloads, tt.modes, got, tt.want)
		}
	}
}

// TestBenchRounds checks that --rounds runs every row that many times,
// every other round in reverse order, and prints the medians.
func TestBenchRounds(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	r := spoolmeta(t, "bench", "--dir", t.TempDir(), "--workload", "calibrate", "--mode", "performance,standard", "--messages", "10", "--rounds", "2")
	r.expect(t, 0)
	var order []string
	for _, l := range lines(r.stderr) {
		if _, rest, ok := strings.Cut(l, "] "); ok {
			w, _, _ := strings.Cut(rest, ":")
			order = append(order, w)
		}
	}
	want := []string{"calibrate durable", "calibrate floor", "calibrate no-fsync", "calibrate one-dir",
		"calibrate one-dir", "calibrate no-fsync", "calibrate floor", "calibrate durable"}
	if !slices.Equal(order, want) {
		t.Errorf("order of the runs %q, want %q", order, want)
	}
	if !strings.Contains(r.stdout, "median of 2 rounds") {
		t.Errorf("no word of the rounds:\n%s", r.stdout)
	}
}

func TestMedians(t *testing.T) {
	t.Parallel()
	ratio := func(v float64) *float64 { return &v }
	row := func(msgs, r float64, heap uint64) benchResult {
		return benchResult{Workload: "lifecycle", MsgPerSec: msgs, Ratio: ratio(r), PeakHeap: heap, Note: fmt.Sprint(msgs)}
	}
	tests := []struct {
		name        string
		rounds      []benchResult
		msgs, ratio float64
		heap        uint64
		note        string
		wantRounds  int
	}{
		{"one", []benchResult{row(10, 1, 5)}, 10, 1, 5, "10", 0},
		{"odd", []benchResult{row(30, 0.5, 1), row(10, 1.5, 9), row(20, 1.0, 2)}, 20, 1.0, 9, "30", 3},
		{"even", []benchResult{row(10, 1, 1), row(40, 2, 1), row(20, 3, 1), row(30, 4, 1)}, 25, 2.5, 1, "10", 4},
	}
	for _, tt := range tests {
		var rounds [][]benchResult
		for _, r := range tt.rounds {
			rounds = append(rounds, []benchResult{r})
		}
		got := medians(rounds)[0]
		gotRatio, _ := deref(got.Ratio)
		if got.MsgPerSec != tt.msgs || got.Ratio == nil || *got.Ratio != tt.ratio || got.PeakHeap != tt.heap || got.Note != tt.note || got.Rounds != tt.wantRounds {
			t.Errorf("%s: got msg/s %v, ratio %v, heap %d, note %q, rounds %d; want %v, %v, %d, %q, %d",
				tt.name, got.MsgPerSec, gotRatio, got.PeakHeap, got.Note, got.Rounds, tt.msgs, tt.ratio, tt.heap, tt.note, tt.wantRounds)
		}
	}
}

// TestBenchInterrupt interrupts a run that would take hours, once it has
// started: bench stops, says so, and removes its directory.
func TestBenchInterrupt(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	parent := t.TempDir()
	interruptFirstRun(t, "bench", "--dir", parent, "--workload", "lifecycle", "--mode", "performance", "--messages", "10000000")
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("bench left %d entries in --dir", len(ents))
	}
}

// interruptFirstRun runs the tool with args, interrupts it once its first
// run has started, checks that it exits with exitError saying so, and
// returns its stderr.
func interruptFirstRun(t *testing.T, args ...string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("os.Interrupt cannot be sent to another process on Windows")
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = testEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The progress of the first run ends in "... " until the run ends.
	var seen []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(seen), "messages ... ") {
		n, err := stderr.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			cmd.Wait()
			t.Fatalf("bench ended before its first run started: %v\n%s", err, seen)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	seen = append(seen, rest...)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitError {
		t.Errorf("exit: %v, want status %d\n%s", err, exitError, seen)
	}
	if !strings.Contains(string(seen), "interrupted") {
		t.Errorf("stderr does not say the run was interrupted:\n%s", seen)
	}
	return string(seen)
}

// TestBenchRescan runs the rescan workload on a few messages: its passes
// see every change, those of the other process included, or it fails.
func TestBenchRescan(t *testing.T) {
	t.Parallel()
	spooltest.NeedDisk(t)
	r := spoolmeta(t, "bench", "--dir", t.TempDir(), "--workload", "rescan", "--messages", "50", "--json")
	r.expect(t, 0)
	var res benchResult
	if err := json.Unmarshal([]byte(lines(r.stdout)[0]), &res); err != nil {
		t.Fatalf("%q: %v", r.stdout, err)
	}
	if res.Workload != "rescan" || res.Stats == nil || res.Stats.Writes != 2*rescanPasses ||
		!strings.Contains(res.Note, "20 passes each: unchanged") || !strings.Contains(res.Note, "after 3 changes") {
		t.Errorf("rescan row %+v", res)
	}
}

// TestBenchDiskLoad runs a workload beside a disk load, which reports what
// it wrote and leaves nothing behind, and checks the flag's usage error.
func TestBenchDiskLoad(t *testing.T) {
	spooltest.NeedDisk(t)
	parent := t.TempDir()
	r := spoolmeta(t, "bench", "--dir", parent, "--workload", "store", "--mode", "standard", "--messages", "20", "--disk-load", "50")
	r.expect(t, 0)
	var mib int
	var rest string
	i := strings.Index(r.stderr, "bench: disk load: ")
	if i < 0 {
		t.Fatalf("no disk load line on stderr:\n%s", r.stderr)
	}
	if _, err := fmt.Sscanf(r.stderr[i:], "bench: disk load: %d MiB written and synced in %s", &mib, &rest); err != nil || mib < 1 {
		t.Errorf("disk load wrote %d MiB (%v), want at least 1:\n%s", mib, err, r.stderr)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("bench left %d entries in --dir", len(ents))
	}
	spoolmeta(t, "bench", "--disk-load", "-1").expect(t, 2)
}
