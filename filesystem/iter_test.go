package filesystem

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// noSharedMemory hides the shared memory of the file system it wraps: the
// Backends on it have no change counters.
type noSharedMemory struct{ vfs.FS }

// TestIteratorReadAheadIsCurrent shows that a message the iterator may
// have read ahead is returned as it is when Next returns it: rewritten,
// moved out, deleted, or moved out and back, between two calls of Next.
// The changes are made by the iterator's Backend or by another one on the
// same directory (another process), and Next knows of them by the change
// counters or, without them, by looking up the file again. A warm pass
// follows one that left every record in the index.
func TestIteratorReadAheadIsCurrent(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		shared, counts, warm bool
	}{
		{"counted, same backend", false, true, false},
		{"counted, another backend", true, true, false},
		{"looked up, same backend", false, false, false},
		{"looked up, another backend", true, false, false},
		{"warm, same backend", false, true, true},
		{"warm, another backend", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fsys vfs.FS = vfs.NewMem()
			if !tc.counts {
				fsys = noSharedMemory{fsys}
			}
			b, err := open(crashConfig(fsys, Performance))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if (b.changes != nil) != tc.counts {
				t.Fatalf("change counters: %v, want them: %t", b.changes, tc.counts)
			}
			w := b
			if tc.shared {
				if w, err = open(crashConfig(fsys, Performance)); err != nil {
					t.Fatal(err)
				}
				defer w.Close()
			}
			testReadAheadIsCurrent(t, b, w, tc.warm)
		})
	}
}

// writer is what testReadAheadIsCurrent changes the messages with: a
// Backend, or one in another process.
type writer interface {
	UpdateMeta(ctx context.Context, id string, md metastorage.MessageMetadata) error
	MoveToState(ctx context.Context, id string, from, to metastorage.QueueState) error
	DeleteMeta(ctx context.Context, id string) error
}

// testReadAheadIsCurrent iterates with b while w changes the messages:
// after the first Next, one message is rewritten, one moved out, one
// deleted, and one moved out and back. If warm, a pass before leaves the
// records in the index, so that the pass that sees the changes is fresh.
func testReadAheadIsCurrent(t *testing.T, b *Backend, w writer, warm bool) {
	const n, batch = 12, 4
	ctx := context.Background()
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("m-%02d", i))
		if err := b.StoreMeta(ctx, ids[i], metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if warm {
		b.idx.now = func() time.Time { return time.Now().Add(time.Hour) } // no stamp too recent
		iterateAll(t, b, metastorage.StateDeferred)
	}
	it, err := b.NewMessageIterator(ctx, metastorage.StateDeferred, batch)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if p := it.(*iterator).pass; warm && (p == nil || !p.fresh) {
		t.Fatal("the pass after a pass over unchanged messages is not fresh")
	}
	first, ok, err := it.Next(ctx)
	if err != nil || !ok {
		t.Fatalf("first Next = %q, %t, %v; want a message", first.ID, ok, err)
	}
	// The next messages are read ahead, or being read, by now. The roles
	// go to messages not yet returned.
	others := slices.DeleteFunc(ids, func(id string) bool { return id == first.ID })
	rewritten, movedOut, deleted, movedBack := others[0], others[1], others[2], others[3]
	md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 7}
	if err := w.UpdateMeta(ctx, rewritten, md); err != nil {
		t.Fatal(err)
	}
	if err := w.MoveToState(ctx, movedOut, metastorage.StateDeferred, metastorage.StateActive); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteMeta(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	for _, mv := range [][2]metastorage.QueueState{
		{metastorage.StateDeferred, metastorage.StateHold}, {metastorage.StateHold, metastorage.StateDeferred},
	} {
		if err := w.MoveToState(ctx, movedBack, mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	wantBack, err := b.GetMeta(ctx, movedBack)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]metastorage.MessageMetadata{}
	for {
		m, ok, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got[m.ID] = m
	}
	if len(got) != n-3 {
		t.Errorf("iterated %d more messages, want %d", len(got), n-3)
	}
	if m := got[rewritten]; m.Attempts != 7 {
		t.Errorf("%s rewritten before Next returned it: Attempts %d, want 7", rewritten, m.Attempts)
	}
	for _, id := range []string{movedOut, deleted} {
		if _, ok := got[id]; ok {
			t.Errorf("%s left the state before Next reached it, and was returned", id)
		}
	}
	if m := got[movedBack]; !m.Updated.Equal(wantBack.Updated) {
		t.Errorf("%s moved out and back: Updated %v, want %v", movedBack, m.Updated, wantBack.Updated)
	}
}

const iterChildEnv = "SPOOLMETA_TEST_ITER_CHILD"

// TestIteratorReadAheadIsCurrentProcesses is TestIteratorReadAheadIsCurrent
// with the changes made by another process on the real file system: the
// change counters are shared through the mapping of .locks/changes.
func TestIteratorReadAheadIsCurrentProcesses(t *testing.T) {
	spooltest.NeedDisk(t)
	if dir := os.Getenv(iterChildEnv); dir != "" {
		os.Exit(iterChild(dir))
	}
	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprint("warm ", warm), func(t *testing.T) { testReadAheadIsCurrentProcesses(t, warm) })
	}
}

func testReadAheadIsCurrentProcesses(t *testing.T, warm bool) {
	dir := t.TempDir()
	b, err := NewBackendWithOptions(dir, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.changes == nil {
		t.Fatal("no change counters on the real file system")
	}
	cmd, in, out := startChild(t, "TestIteratorReadAheadIsCurrentProcesses", iterChildEnv+"="+dir)
	defer func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process: %v", err)
		}
	}()
	w := &processWriter{in: in, out: out}
	if err := w.call("ready?"); err != nil {
		t.Fatal(err)
	}
	testReadAheadIsCurrent(t, b, w, warm)
}

// processWriter sends calls to the writer process, a line each, and
// returns the error it answers with.
type processWriter struct {
	in  io.Writer
	out *bufio.Reader
}

func (w *processWriter) call(line string) error {
	if _, err := fmt.Fprintln(w.in, line); err != nil {
		return err
	}
	reply, err := w.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("writer process: %w", err)
	}
	if reply != "ok\n" {
		return fmt.Errorf("writer process: %s", strings.TrimSpace(reply))
	}
	return nil
}

func (w *processWriter) UpdateMeta(_ context.Context, id string, md metastorage.MessageMetadata) error {
	return w.call(fmt.Sprintf("update %s %d %d", id, md.State, md.Attempts))
}

func (w *processWriter) MoveToState(_ context.Context, id string, from, to metastorage.QueueState) error {
	return w.call(fmt.Sprintf("move %s %d %d", id, from, to))
}

func (w *processWriter) DeleteMeta(_ context.Context, id string) error {
	return w.call("delete " + id)
}

// iterChild is the writer process: it makes the calls it reads on stdin
// with a Backend of its own and answers each with "ok" or the error.
func iterChild(dir string) int {
	b, err := NewBackendWithOptions(dir, true, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer b.Close()
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var id string
		var a, c int
		var err error
		switch f := strings.Fields(in.Text()); f[0] {
		case "ready?":
		case "update":
			fmt.Sscan(f[2]+" "+f[3], &a, &c)
			id = f[1]
			err = b.UpdateMeta(ctx, id, metastorage.MessageMetadata{State: metastorage.QueueState(a), Attempts: c})
		case "move":
			fmt.Sscan(f[2]+" "+f[3], &a, &c)
			err = b.MoveToState(ctx, f[1], metastorage.QueueState(a), metastorage.QueueState(c))
		case "delete":
			err = b.DeleteMeta(ctx, f[1])
		default:
			err = fmt.Errorf("unknown call %q", in.Text())
		}
		if err != nil {
			fmt.Println(strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Println("ok")
	}
	return 0
}

// TestIteratorRecordReadDuringChange shows that a record read ahead from
// a file that was replaced just after it was opened is not returned: the
// read-ahead notes the change counter before it opens the file, so Next
// sees the change and reads the message again.
func TestIteratorRecordReadDuringChange(t *testing.T) {
	b, rewritten := rewriteAfterOpen(t, func(int) metastorage.MessageMetadata {
		return metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 1}
	}, metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 7})
	ctx := context.Background()
	it, err := b.NewMessageIterator(ctx, metastorage.StateDeferred, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	seen := false
	for {
		md, ok, err := it.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if md.ID == "m-5" {
			seen = true
			if md.Attempts != 7 {
				t.Errorf("m-5 returned with Attempts %d; it was rewritten (7) before Next returned it", md.Attempts)
			}
		}
	}
	if err := rewritten(); err != nil || !seen {
		t.Fatalf("m-5 returned: %t; %v", seen, err)
	}
}
