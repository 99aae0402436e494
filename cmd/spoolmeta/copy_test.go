package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// seedDir returns a new metadata directory holding n messages spread over
// the states, with every field set and times in two zones.
func seedDir(t *testing.T, n int) string {
	t.Helper()
	spooltest.NeedDisk(t)
	dir := filepath.Join(t.TempDir(), "meta")
	l := open(t, dir, modeCreate)
	zone := time.FixedZone("", 2*3600+1800)
	for i := range n {
		md := metastorage.MessageMetadata{State: metastorage.States()[i%int(metastorage.NumStates)], Attempts: i % 4, MaxAttempts: 5,
			NextRetry: time.Date(2030, 1, 2, 3, 4, 5, i, zone), Created: time.Date(2026, 1, 2, 3, 4, 5, 6+i, time.UTC),
			LastError: fmt.Sprint("error ", i), Size: int64(100 * i), Priority: i % 3, RetryPolicyName: "default",
			Headers: map[string]string{"to": fmt.Sprintf("u%d@example.org", i)}}
		if err := l.StoreMeta(context.Background(), fmt.Sprintf("msg-%03d", i), md); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return dir
}

// sameRecords fails t unless got holds exactly the records of want, every
// field equal and the times with their offsets.
func sameRecords(t *testing.T, what string, got, want map[string]metastorage.MessageMetadata) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("%s: %s missing", what, id)
			continue
		}
		if !metastorage.SameRecord(g, w) || g.Created.String() != w.Created.String() || g.Updated.String() != w.Updated.String() || g.NextRetry.String() != w.NextRetry.String() {
			t.Errorf("%s: %s = %+v, want %+v", what, id, g, w)
		}
	}
}

// copyCase is a pair of kinds of location.
type copyCase struct {
	name     string
	src, dst func(t *testing.T, from string) string // from: a directory to take the source's records from
}

// locations returns the case's source, holding n seeded messages, and its
// destination.
func (c copyCase) locations(t *testing.T, n int) (src, dst string) {
	seed := seedDir(t, n)
	return c.src(t, seed), c.dst(t, seed)
}

// dirFrom returns the directory from itself.
func dirFrom(_ *testing.T, from string) string { return from }

// newDir returns a path for a directory that does not exist yet.
func newDir(t *testing.T, _ string) string { return filepath.Join(t.TempDir(), "copy") }

// databaseFrom returns a database holding the records of from.
func databaseFrom(t *testing.T, from string) string {
	loc := newDatabase(t)
	dst := open(t, loc, modeCreate)
	for id, md := range records(t, from) {
		if ok, err := dst.ImportMeta(context.Background(), id, md); err != nil || !ok {
			t.Fatalf("import %s: %v, %v", id, ok, err)
		}
	}
	dst.Close()
	return loc
}

// emptyDatabase returns a database location whose schema does not exist.
func emptyDatabase(t *testing.T, _ string) string { return newDatabase(t) }

var copyCases = []copyCase{
	{"dir to dir", dirFrom, newDir},
	{"dir to database", dirFrom, emptyDatabase},
	{"database to dir", databaseFrom, newDir},
}

// TestCopy copies between every pair of kinds, checks the destination
// holds every record exactly and the source is unchanged, then copies
// again and checks that it copies nothing.
func TestCopy(t *testing.T) {
	t.Parallel()
	for _, c := range copyCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src, dst := c.locations(t, 30)
			want := records(t, src)
			var before map[string]string
			if !isDatabase(src) {
				before = spooltest.Snapshot(t, src)
			}
			r := spoolmeta(t, "copy", "--from", src, "--to", dst)
			r.expect(t, 0)
			if r.stdout != "" || !strings.Contains(r.stderr, "copy: 30 copied, 0 already there, 0 conflicts\n") ||
				!strings.Contains(r.stderr, "30 records verified at the destination, 0 differ") ||
				!strings.Contains(r.stderr, "the counts per state agree: 30 messages") {
				t.Errorf("first copy: %+v", r)
			}
			sameRecords(t, "destination", records(t, dst), want)
			sameRecords(t, "source", records(t, src), want)
			if before != nil {
				spooltest.SameSnapshot(t, before, spooltest.Snapshot(t, src))
			}
			r = spoolmeta(t, "copy", "--from", src, "--to", dst)
			r.expect(t, 0)
			if !strings.Contains(r.stderr, "copy: nothing to copy: all 30 messages already at the destination\n") {
				t.Errorf("second copy: %+v, want it to say there was nothing to copy", r)
			}
			sameRecords(t, "destination after a second copy", records(t, dst), want)
		})
	}
}

// TestCopyMove checks that --move leaves the source empty and the
// destination with every record, also when the destination already holds
// them, as when an earlier --move ended between importing the records and
// removing them from the source.
func TestCopyMove(t *testing.T) {
	t.Parallel()
	for _, imported := range []bool{false, true} {
		summary := "12 copied, 0 already there, 0 conflicts, 12 removed from the source, 0 kept there"
		if imported {
			summary = "0 copied, 12 already there, 0 conflicts, 12 removed from the source, 0 kept there"
		}
		for _, c := range copyCases {
			t.Run(fmt.Sprintf("%s/imported=%v", c.name, imported), func(t *testing.T) {
				t.Parallel()
				src, dst := c.locations(t, 12)
				want := records(t, src)
				if imported {
					spoolmeta(t, "copy", "--from", src, "--to", dst).expect(t, 0)
				}
				r := spoolmeta(t, "copy", "--move", "--from", src, "--to", dst)
				r.expect(t, 0)
				if !strings.Contains(r.stderr, summary) {
					t.Errorf("copy --move: %+v, want %q", r, summary)
				}
				sameRecords(t, "destination", records(t, dst), want)
				if got := records(t, src); len(got) != 0 {
					t.Errorf("%d messages left at the source after --move", len(got))
				}
			})
		}
	}
}

// TestCopyConflict checks that a record at the destination that differs
// from the source's is reported and left alone, and replaced with
// --overwrite.
func TestCopyConflict(t *testing.T) {
	t.Parallel()
	for _, c := range copyCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src, dst := c.locations(t, 6)
			spoolmeta(t, "copy", "--from", src, "--to", dst).expect(t, 0)
			spoolmeta(t, "-d", dst, "hold", "msg-002").expect(t, 0)
			changed := records(t, dst)["msg-002"]
			r := spoolmeta(t, "copy", "--from", src, "--to", dst)
			r.expect(t, 1)
			if r.stdout != "conflict msg-002 (deferred): the destination holds another record (state, updated differ); left alone\n" ||
				!strings.Contains(r.stderr, "0 copied, 5 already there, 1 conflict\n") {
				t.Errorf("copy over a changed record: %+v", r)
			}
			if got := records(t, dst)["msg-002"]; !metastorage.SameRecord(got, changed) {
				t.Errorf("the conflicting record was changed: %+v, want %+v", got, changed)
			}
			r = spoolmeta(t, "copy", "--overwrite", "--from", src, "--to", dst)
			r.expect(t, 0)
			if !strings.HasPrefix(r.stdout, "overwritten msg-002 (deferred)") {
				t.Errorf("copy --overwrite: %+v", r)
			}
			sameRecords(t, "destination after --overwrite", records(t, dst), records(t, src))
		})
	}
}

// faultyImporter, after n imports, fails every import with err, or
// cancels the context of the copy; it calls hook after each import when
// set.
type faultyImporter struct {
	importer
	n      int
	err    error
	cancel context.CancelFunc
	hook   func(i int)
	done   int
}

func (f *faultyImporter) ImportMeta(ctx context.Context, id string, md metastorage.MessageMetadata) (bool, error) {
	if f.done >= f.n {
		if f.err != nil {
			return false, f.err
		}
		if f.cancel != nil {
			f.cancel()
		}
	}
	ok, err := f.importer.ImportMeta(ctx, id, md)
	f.done++
	if f.hook != nil {
		f.hook(f.done)
	}
	return ok, err
}

// runCopier copies src to dst in this process, after setup changes the
// copier if it is not nil, and returns its stdout, stderr and error.
func runCopier(ctx context.Context, t *testing.T, src, dst string, move bool, setup func(*copier)) (stdout, stderr string, err error) {
	t.Helper()
	return runCopierWith(ctx, t, src, dst, move, 1, setup)
}

// runCopierWith is runCopier with workers copying at once.
func runCopierWith(ctx context.Context, t *testing.T, src, dst string, move bool, workers int, setup func(*copier)) (stdout, stderr string, err error) {
	t.Helper()
	s := open(t, src, modeWritable)
	d := open(t, dst, modeCreate)
	defer s.Close()
	defer d.Close()
	var out, errs bytes.Buffer
	w := bufio.NewWriter(&out)
	c := newCopier(s, d, &copyReport{w: w}, &errs)
	c.move, c.workers = move, workers
	if setup != nil {
		setup(c)
	}
	err = c.run(ctx)
	w.Flush()
	return out.String(), errs.String(), err
}

// TestCopyResumes interrupts copies with a failing destination, a
// cancelled context and a signal, and checks that each leaves exact records behind and
// that a second run copies the rest, with --move too.
func TestCopyResumes(t *testing.T) {
	t.Parallel()
	injected := errors.New("injected fault")
	signal := &interruptedError{sig: syscall.SIGINT}
	for _, c := range copyCases {
		for _, fault := range []error{injected, context.Canceled, signal} {
			for _, move := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/move=%v", c.name, fault, move), func(t *testing.T) {
					t.Parallel()
					src, dst := c.locations(t, 25)
					want := records(t, src)
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					_, stderr, err := runCopier(ctx, t, src, dst, move, func(c *copier) {
						switch fault {
						case injected:
							c.dstImport = &faultyImporter{importer: c.dstImport, n: 10, err: fault}
						case context.Canceled:
							c.dstImport = &faultyImporter{importer: c.dstImport, n: 10, cancel: cancel}
						default:
							c.stopped = func() *interruptedError {
								if c.t.read >= 10 {
									return signal
								}
								return nil
							}
						}
					})
					if !errors.Is(err, fault) || !strings.Contains(err.Error()+stderr, "run copy again to resume") {
						t.Fatalf("interrupted copy: %v\n%s\nwant the fault and a hint to resume", err, stderr)
					}
					if !strings.Contains(stderr, "copy: 10 copied") {
						t.Errorf("interrupted copy's summary: %q", stderr)
					}
					got := records(t, dst)
					if len(got) != 10 {
						t.Errorf("%d messages at the destination after 10 imports", len(got))
					}
					for id, md := range got {
						sameRecords(t, "copied before the fault", map[string]metastorage.MessageMetadata{id: md}, map[string]metastorage.MessageMetadata{id: want[id]})
					}
					if left := len(records(t, src)); move && left != 15 || !move && left != 25 {
						t.Errorf("%d messages left at the source", left)
					}
					stdout, stderr, err := runCopier(context.Background(), t, src, dst, move, nil)
					if err != nil || stdout != "" {
						t.Fatalf("resumed copy: %v\n%s%s", err, stdout, stderr)
					}
					wantSummary := "copy: 15 copied, 10 already there, 0 conflicts\n"
					if move {
						wantSummary = "copy: 15 copied, 0 already there, 0 conflicts, 15 removed from the source, 0 kept there\n"
					}
					if !strings.Contains(stderr, wantSummary) {
						t.Errorf("resumed copy's summary: %q, want %q", stderr, wantSummary)
					}
					sameRecords(t, "destination after the resumed copy", records(t, dst), want)
				})
			}
		}
	}
}

// TestCopyLiveSource changes the source while it is copied, at a known
// point, and checks that the copy reports what was added, changed and gone
// since it was copied, and fails.
func TestCopyLiveSource(t *testing.T) {
	t.Parallel()
	for _, c := range copyCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src, dst := c.locations(t, 18)
			live := open(t, src, modeWritable)
			ctx := context.Background()
			// The first state's messages, msg-000, msg-006 and msg-012 in
			// incoming, are copied first: after the fourth import, its
			// pass is over.
			change := func(i int) {
				if i != 4 {
					return
				}
				md, err := live.GetMeta(ctx, "msg-006")
				if err != nil {
					t.Error(err)
					return
				}
				md.Attempts++
				for _, err := range []error{
					live.UpdateMeta(ctx, "msg-006", md),
					live.DeleteMeta(ctx, "msg-012"),
					live.StoreMeta(ctx, "new-1", metastorage.MessageMetadata{State: metastorage.StateIncoming}),
				} {
					if err != nil {
						t.Error(err)
					}
				}
			}
			stdout, stderr, err := runCopier(ctx, t, src, dst, false, func(c *copier) {
				c.dstImport = &faultyImporter{importer: c.dstImport, n: 1 << 30, hook: change}
			})
			if !errors.Is(err, errSilentPartial) {
				t.Errorf("copy of a live source: %v, want a partial result", err)
			}
			want := "added new-1 (incoming): stored at the source during the copy; not copied\n" +
				"changed msg-006 (incoming): changed at the source after it was copied\n" +
				"gone msg-012: removed from the source after it was copied\n"
			got := lines(stdout)
			slices.Sort(got)
			if strings.Join(got, "\n")+"\n" != want {
				t.Errorf("stdout:\n%s\nwant\n%s", stdout, want)
			}
			if !strings.Contains(stderr, "the source changed during the copy: 1 added, 1 changed, 1 gone since copied (listed above); 16 records verified") {
				t.Errorf("stderr: %q", stderr)
			}
		})
	}
}

// TestCopyWorkers copies with several workers, for the race detector, and
// checks the result as TestCopy does, with --move too.
func TestCopyWorkers(t *testing.T) {
	t.Parallel()
	for _, c := range copyCases {
		for _, move := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/move=%v", c.name, move), func(t *testing.T) {
				t.Parallel()
				src, dst := c.locations(t, 120)
				want := records(t, src)
				stdout, stderr, err := runCopierWith(context.Background(), t, src, dst, move, 8, nil)
				if err != nil || stdout != "" || !strings.Contains(stderr, "copy: 120 copied, 0 already there, 0 conflicts") {
					t.Fatalf("copy with 8 workers: %v\n%s%s", err, stdout, stderr)
				}
				sameRecords(t, "destination", records(t, dst), want)
				if left := len(records(t, src)); move && left != 0 || !move && left != 120 {
					t.Errorf("%d messages left at the source", left)
				}
			})
		}
	}
}

// TestCopySameSpool checks that copy refuses a source and a destination
// that are one spool under two spellings, with --move too, and changes
// nothing.
func TestCopySameSpool(t *testing.T) {
	t.Parallel()
	dir := seedDir(t, 3)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(dir), link); err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{{dir, dir + "/."}, {dir, filepath.Join(link, filepath.Base(dir))}}
	if os.Getenv(dsnVar) != "" {
		loc := databaseFrom(t, dir)
		other, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		q := other.Query()
		q.Set("application_name", "spoolmeta-copy-test")
		other.RawQuery = q.Encode()
		pairs = append(pairs, [2]string{loc, other.String()})
	}
	for i, p := range pairs {
		want := records(t, p[0])
		r := spoolmeta(t, "copy", "--move", "--from", p[0], "--to", p[1])
		r.expect(t, 2)
		// The first pair differs in spelling only; the others are found
		// the same once open.
		if i == 0 && !strings.Contains(r.stderr, "name the same location") || i > 0 && !strings.Contains(r.stderr, "are the same spool") {
			t.Errorf("copy from %s to %s: stderr %q, want a refusal", redact(p[0]), redact(p[1]), r.stderr)
		}
		sameRecords(t, "after a refused copy", records(t, p[0]), want)
	}
}

// TestCopyEmpty copies a spool without messages.
func TestCopyEmpty(t *testing.T) {
	t.Parallel()
	src, dst := seedDir(t, 0), filepath.Join(t.TempDir(), "copy")
	r := spoolmeta(t, "copy", "--from", src, "--to", dst)
	r.expect(t, 0)
	if !strings.Contains(r.stderr, "copy: nothing to copy: the source holds no messages\n") || !strings.Contains(r.stderr, "the counts per state agree: 0 messages") {
		t.Errorf("copy of an empty spool: %+v", r)
	}
	if err := checkMetadataDir(dst); err != nil {
		t.Errorf("the destination was not made: %v", err)
	}
}

// changingImporter changes, at the source, the first message it imports,
// just after the import: before --move removes it there.
type changingImporter struct {
	importer
	src     *location
	changed string
}

func (c *changingImporter) ImportMeta(ctx context.Context, id string, md metastorage.MessageMetadata) (bool, error) {
	ok, err := c.importer.ImportMeta(ctx, id, md)
	if err == nil && c.changed == "" {
		c.changed = id
		md.Attempts++
		err = c.src.UpdateMeta(ctx, id, md)
	}
	return ok, err
}

// TestCopyMoveKeepsChanged shows that copy --move leaves at the source a
// message changed there after it was read, says so, and fails.
func TestCopyMoveKeepsChanged(t *testing.T) {
	t.Parallel()
	for _, c := range copyCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src, dst := c.locations(t, 6)
			before := records(t, src)
			live := open(t, src, modeWritable)
			ci := &changingImporter{src: live}
			stdout, stderr, err := runCopier(context.Background(), t, src, dst, true, func(cp *copier) {
				ci.importer = cp.dstImport
				cp.dstImport = ci
			})
			if !errors.Is(err, errSilentPartial) {
				t.Errorf("copy --move of a message changed meanwhile: %v, want a partial result", err)
			}
			if !strings.Contains(stdout, "kept "+ci.changed+" ") {
				t.Errorf("stdout does not name %s as kept:\n%s", ci.changed, stdout)
			}
			if !strings.Contains(stderr, "5 removed from the source, 1 kept there") {
				t.Errorf("stderr: %q", stderr)
			}
			left := records(t, src)
			if md, ok := left[ci.changed]; len(left) != 1 || !ok || md.Attempts != before[ci.changed].Attempts+1 {
				t.Errorf("source after the move holds %v, want only %s as changed there", slices.Collect(maps.Keys(left)), ci.changed)
			}
		})
	}
}
