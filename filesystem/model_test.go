package filesystem

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/model"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The randomized model test runs the same random operations against the
// filesystem backend and against internal/model, the contract's in-memory
// reference, and compares every result: the class of each error, every
// record returned, every page of ListMessages, every count, and at the end
// the whole contents of every state. Set SPOOLMETA_MODEL_SEED to replay a
// failing seed.

// modelSeed returns the seed of a randomized run: SPOOLMETA_MODEL_SEED if
// set, else a fresh one. The test logs it on failure.
func modelSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("SPOOLMETA_MODEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SPOOLMETA_MODEL_SEED=%q: %v", s, err)
		}
		return v
	}
	return rand.Uint64()
}

func logSeedOnFailure(t *testing.T, seed uint64) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with SPOOLMETA_MODEL_SEED=%d", seed)
		}
	})
}

// errClass names the sentinel an error wraps, for comparing errors of two
// backends whose messages differ.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, metastorage.ErrMessageNotFound):
		return "ErrMessageNotFound"
	case errors.Is(err, metastorage.ErrStateConflict):
		return "ErrStateConflict"
	case errors.Is(err, metastorage.ErrInvalidState):
		return "ErrInvalidState"
	case errors.Is(err, metastorage.ErrInvalidMessageID):
		return "ErrInvalidMessageID"
	case errors.Is(err, metastorage.ErrBackendClosed):
		return "ErrBackendClosed"
	}
	return "other error"
}

// modelHarness drives both backends and compares them.
type modelHarness struct {
	t   *testing.T
	ctx context.Context
	fs  *Backend
	ref *model.Backend
	rng *rand.Rand

	mu sync.Mutex
	// defaulted holds the IDs whose Created was set by the backends' own
	// clocks, which differ; their Created is only checked to be set.
	defaulted map[string]bool
	// marks are instants taken between operations, used as Since: they
	// split both backends' messages the same way.
	marks []time.Time
	// clock is the backends' clock and that of marks.
	clock func() time.Time
	// outcomes counts the results by call and error class, logged so that
	// a change that makes the random operations miss a case shows.
	outcomes map[string]int
}

func (h *modelHarness) setDefaulted(id string, v bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v {
		h.defaulted[id] = true
	} else {
		delete(h.defaulted, id)
	}
}

func (h *modelHarness) isDefaulted(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.defaulted[id]
}

// sameModelRecord reports how got (the filesystem's) differs from want
// (the model's), or "" if it does not. Updated, and Created when the
// backends defaulted it, come from each backend's clock: they are only
// checked to be set.
func (h *modelHarness) sameModelRecord(got, want metastorage.MessageMetadata) string {
	if got.Updated.IsZero() || want.Updated.IsZero() {
		return fmt.Sprintf("Updated not set: %v / %v", got.Updated, want.Updated)
	}
	if h.isDefaulted(want.ID) {
		if got.Created.IsZero() || want.Created.IsZero() {
			return fmt.Sprintf("defaulted Created not set: %v / %v", got.Created, want.Created)
		}
	} else if !got.Created.Equal(want.Created) {
		return fmt.Sprintf("Created %v, want %v", got.Created, want.Created)
	}
	if !got.NextRetry.Equal(want.NextRetry) {
		return fmt.Sprintf("NextRetry %v, want %v", got.NextRetry, want.NextRetry)
	}
	if (got.Headers == nil) != (want.Headers == nil) {
		return fmt.Sprintf("Headers %#v, want %#v (nil-ness differs)", got.Headers, want.Headers)
	}
	got.Created, got.Updated, got.NextRetry = time.Time{}, time.Time{}, time.Time{}
	want.Created, want.Updated, want.NextRetry = time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("\n got %+v\nwant %+v", got, want)
	}
	return ""
}

var modelZones = []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -5*3600-1800), time.FixedZone("", 14*3600)}

// randTime returns an instant in 2020 with nanoseconds and a random
// offset: before every instant the backends' clocks give, so that sorting
// by Created puts explicit ones before defaulted ones in both.
func randTime(r *rand.Rand) time.Time {
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// A small range, so that equal Created values (ties) occur.
	t := base.Add(time.Duration(r.IntN(8)) * time.Hour)
	if r.IntN(2) == 0 {
		t = t.Add(time.Duration(r.IntN(1e9)))
	}
	return t.In(modelZones[r.IntN(len(modelZones))])
}

func randRecord(r *rand.Rand, allowInvalidState bool) metastorage.MessageMetadata {
	md := metastorage.MessageMetadata{
		ID:              []string{"", "other-id", "ignored"}[r.IntN(3)],
		State:           metastorage.QueueState(r.IntN(metastorage.NumStates)),
		Attempts:        r.IntN(4),
		MaxAttempts:     r.IntN(6),
		LastError:       []string{"", "451 4.7.1 greylisted", "550 5.1.1 unknown \"user\"", "délai dépassé ☃", "line\nbreak\ttab\x00nul"}[r.IntN(5)],
		Size:            r.Int64N(1 << 40),
		Priority:        r.IntN(5) - 1,
		RetryPolicyName: []string{"", "smtp-default", "fast"}[r.IntN(3)],
		Updated:         []time.Time{{}, time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)}[r.IntN(2)], // ignored by both
	}
	if r.IntN(2) == 0 {
		md.NextRetry = randTime(r)
	}
	if r.IntN(2) == 0 {
		md.Created = randTime(r)
	}
	switch r.IntN(3) {
	case 0: // nil
	case 1:
		md.Headers = map[string]string{}
	case 2:
		md.Headers = map[string]string{"to": "alice@example.com", "subject": "Rechnung für März"}
		if r.IntN(2) == 0 {
			md.Headers["x-empty"] = ""
		}
	}
	if allowInvalidState && r.IntN(30) == 0 {
		md.State = []metastorage.QueueState{-1, metastorage.NumStates, 99}[r.IntN(3)]
	}
	return md
}

func randState(r *rand.Rand, invalidOdds int) metastorage.QueueState {
	if invalidOdds > 0 && r.IntN(invalidOdds) == 0 {
		return []metastorage.QueueState{-1, metastorage.NumStates}[r.IntN(2)]
	}
	return metastorage.QueueState(r.IntN(metastorage.NumStates))
}

// modelIDs is the small ID space of the sequential run: existing and
// missing messages and conflicts are frequent. It holds IDs the file-name
// encoding escapes.
var modelIDs = func() []string {
	ids := []string{"a/b", "..", ".hidden", "100%", "x.json", "sp ace"}
	for i := len(ids); i < 20; i++ {
		ids = append(ids, fmt.Sprintf("msg-%02d", i))
	}
	return ids
}()

// step runs one random operation on both backends and compares the
// results. ids is the ID space; global says whether ListMessages, the
// iterator and the counts may be compared (false when other goroutines
// change the backends meanwhile).
func (h *modelHarness) step(r *rand.Rand, ids []string, global bool) {
	t, ctx := h.t, h.ctx
	id := ids[r.IntN(len(ids))]
	if r.IntN(100) == 0 {
		id = "" // invalid everywhere
	}
	n := 6
	if global {
		n = 9
	}
	switch op := r.IntN(n); op {
	case 0, 1: // store
		md := randRecord(r, id != "")
		em := h.ref.StoreMeta(ctx, id, md)
		ef := h.fs.StoreMeta(ctx, id, md)
		if h.compareErr(fmt.Sprintf("StoreMeta(%q, %+v)", id, md), ef, em) && em == nil {
			h.setDefaulted(id, md.Created.IsZero())
		}
	case 2: // get
		h.compareGet(id)
	case 3: // update
		md := randRecord(r, id != "")
		em := h.ref.UpdateMeta(ctx, id, md)
		ef := h.fs.UpdateMeta(ctx, id, md)
		h.compareErr(fmt.Sprintf("UpdateMeta(%q, %+v)", id, md), ef, em)
	case 4: // delete
		em := h.ref.DeleteMeta(ctx, id)
		ef := h.fs.DeleteMeta(ctx, id)
		h.compareErr(fmt.Sprintf("DeleteMeta(%q)", id), ef, em)
	case 5: // move; the expected state is right about half the time
		from := randState(r, 0)
		if md, err := h.ref.GetMeta(ctx, id); err == nil && r.IntN(2) == 0 {
			from = md.State
		}
		if r.IntN(40) == 0 {
			from = randState(r, 1)
		}
		to := randState(r, 40)
		if id == "" && (!from.Valid() || !to.Valid()) {
			// Which of two invalid arguments is reported is not part
			// of the contract.
			to, from = 0, 0
		}
		em := h.ref.MoveToState(ctx, id, from, to)
		ef := h.fs.MoveToState(ctx, id, from, to)
		h.compareErr(fmt.Sprintf("MoveToState(%q, %v, %v)", id, from, to), ef, em)
	case 6: // list
		h.compareList(r)
	case 7: // iterate
		s := randState(r, 40)
		h.compareIterate(s, r.IntN(5))
	case 8: // counts
		for _, s := range append(metastorage.States(), -1, metastorage.NumStates) {
			if cf, cm := h.fs.GetStateCount(s), h.ref.GetStateCount(s); cf != cm {
				t.Errorf("GetStateCount(%v) = %d, model %d", s, cf, cm)
			}
		}
	}
	if global && r.IntN(20) == 0 {
		h.mu.Lock()
		h.marks = append(h.marks, h.clock())
		h.mu.Unlock()
	}
}

// compareErr compares the error classes of the filesystem's (ef) and the
// model's (em) results of the call what, and reports whether they agree.
func (h *modelHarness) compareErr(what string, ef, em error) bool {
	h.t.Helper()
	h.mu.Lock()
	op, _, _ := strings.Cut(what, "(")
	h.outcomes[op+" "+errClass(em)]++
	h.mu.Unlock()
	if errClass(ef) != errClass(em) {
		h.t.Errorf("%s: filesystem %v (%s), model %v (%s)", what, ef, errClass(ef), em, errClass(em))
		return false
	}
	return true
}

func (h *modelHarness) compareGet(id string) {
	h.t.Helper()
	mm, em := h.ref.GetMeta(h.ctx, id)
	mf, ef := h.fs.GetMeta(h.ctx, id)
	if !h.compareErr(fmt.Sprintf("GetMeta(%q)", id), ef, em) || em != nil {
		return
	}
	if d := h.sameModelRecord(mf, mm); d != "" {
		h.t.Errorf("GetMeta(%q): %s", id, d)
	}
}

func (h *modelHarness) compareList(r *rand.Rand) {
	h.t.Helper()
	opts := metastorage.MessageListOptions{
		SortBy:    []string{metastorage.SortByID, metastorage.SortByCreated, metastorage.SortByUpdated, metastorage.SortByPriority, metastorage.SortByAttempts}[r.IntN(5)],
		SortOrder: []string{"", metastorage.SortAsc, metastorage.SortDesc}[r.IntN(3)],
		Limit:     []int{0, 0, 1, 2, 3, 7}[r.IntN(6)],
		Offset:    []int{0, 0, 1, 2, 5, 30}[r.IntN(6)],
	}
	h.mu.Lock()
	if len(h.marks) > 0 && r.IntN(3) == 0 {
		opts.Since = h.marks[r.IntN(len(h.marks))]
	} else if r.IntN(6) == 0 {
		opts.Since = randTime(r)
	}
	h.mu.Unlock()
	switch r.IntN(40) {
	case 0:
		opts.Limit = -1
	case 1:
		opts.Offset = -2
	case 2:
		opts.SortBy = "size"
	case 3:
		opts.SortOrder = "sideways"
	}
	s := randState(r, 40)
	rm, em := h.ref.ListMessages(h.ctx, s, opts)
	rf, ef := h.fs.ListMessages(h.ctx, s, opts)
	what := fmt.Sprintf("ListMessages(%v, %+v)", s, opts)
	if !h.compareErr(what, ef, em) || em != nil {
		return
	}
	if rf.MessageIDs == nil {
		h.t.Errorf("%s: nil MessageIDs", what)
	}
	if !slices.Equal(rf.MessageIDs, rm.MessageIDs) || rf.Total != rm.Total || rf.HasMore != rm.HasMore {
		h.t.Errorf("%s:\n got %q total %d more %v\nwant %q total %d more %v", what,
			rf.MessageIDs, rf.Total, rf.HasMore, rm.MessageIDs, rm.Total, rm.HasMore)
	}
}

// drain returns every record an iterator yields, sorted by ID.
func drain(ctx context.Context, it metastorage.MessageIterator) ([]metastorage.MessageMetadata, error) {
	defer it.Close()
	var out []metastorage.MessageMetadata
	for {
		md, ok, err := it.Next(ctx)
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		out = append(out, md)
	}
	slices.SortFunc(out, func(a, b metastorage.MessageMetadata) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

func (h *modelHarness) iterate(b metastorage.Backend, s metastorage.QueueState, batch int) ([]metastorage.MessageMetadata, error) {
	it, err := b.NewMessageIterator(h.ctx, s, batch)
	if err != nil {
		return nil, err
	}
	return drain(h.ctx, it)
}

// compareIterate compares what iterators over state s yield, as sets: the
// filesystem yields directory order, the model ID order.
func (h *modelHarness) compareIterate(s metastorage.QueueState, batch int) {
	h.t.Helper()
	lm, em := h.iterate(h.ref, s, batch)
	lf, ef := h.iterate(h.fs, s, batch)
	what := fmt.Sprintf("iterate(%v, batch %d)", s, batch)
	if !h.compareErr(what, ef, em) || em != nil {
		return
	}
	if len(lf) != len(lm) {
		h.t.Errorf("%s: %d messages %v, model %d %v", what, len(lf), idsOf(lf), len(lm), idsOf(lm))
		return
	}
	for i := range lf {
		if lf[i].ID != lm[i].ID {
			h.t.Errorf("%s: IDs %q, model %q", what, idsOf(lf), idsOf(lm))
			return
		}
		if d := h.sameModelRecord(lf[i], lm[i]); d != "" {
			h.t.Errorf("%s: %q: %s", what, lf[i].ID, d)
		}
	}
}

func idsOf(mds []metastorage.MessageMetadata) []string {
	ids := make([]string, len(mds))
	for i, md := range mds {
		ids[i] = md.ID
	}
	return ids
}

// compareAll compares the whole contents of every state, by iterator, by
// ListMessages and by GetMeta of each ID, and the counts.
func (h *modelHarness) compareAll(ids []string) {
	h.t.Helper()
	for _, s := range metastorage.States() {
		h.compareIterate(s, 3)
		all := metastorage.MessageListOptions{}
		rm, em := h.ref.ListMessages(h.ctx, s, all)
		rf, ef := h.fs.ListMessages(h.ctx, s, all)
		if ef != nil || em != nil || !slices.Equal(rf.MessageIDs, rm.MessageIDs) || rf.Total != rm.Total {
			h.t.Errorf("final ListMessages(%v) = %q, %v; model %q, %v", s, rf.MessageIDs, ef, rm.MessageIDs, em)
		}
		if cf, cm := h.fs.GetStateCount(s), h.ref.GetStateCount(s); cf != cm {
			h.t.Errorf("final GetStateCount(%v) = %d, model %d", s, cf, cm)
		}
	}
	for _, id := range ids {
		h.compareGet(id)
	}
}

func newModelHarness(t *testing.T, mode Mode, seed uint64) *modelHarness {
	t.Helper()
	cfg := factoryFor(t.TempDir(), mode).cfg
	if !spooltest.DiskBackend {
		// Where the backend does not open on disk, the model checks it on
		// the in-memory file system.
		cfg = memConfig(vfs.NewMem(), mode)
	}
	clock := increasingClock()
	cfg.now = clock
	b, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	if err := b.WaitCounts(ctx); err != nil {
		t.Fatal(err)
	}
	return &modelHarness{t: t, ctx: ctx, fs: b, ref: model.NewClock(clock), clock: clock, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		defaulted: make(map[string]bool), outcomes: make(map[string]int)}
}

// increasingClock returns a clock each of whose readings is later than the
// one before, also where the system clock is coarse (Windows): calls made
// one after the other, on either backend, are then ordered in time as made.
func increasingClock() func() time.Time {
	var mu sync.Mutex
	var last time.Time
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := time.Now().Round(0)
		if !t.After(last) {
			t = last.Add(time.Nanosecond)
		}
		last = t
		return t
	}
}

var allModes = []Mode{Standard, Performance, Hybrid}

// TestModelRandom runs, in each mode, a long random sequence of
// operations on a small ID space against the backend and the model, then
// several goroutines on disjoint IDs, then goroutines racing to move shared
// IDs. The sequence has 500 operations, 2000 with SPOOLMETA_LONG_TESTS set.
func TestModelRandom(t *testing.T) {
	t.Parallel()
	seed := modelSeed(t)
	logSeedOnFailure(t, seed)
	ops := 500
	if longTests() && !testing.Short() {
		ops = 2000
	}
	for i, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			t.Run("sequential", func(t *testing.T) {
				h := newModelHarness(t, mode, seed+uint64(i))
				for n := 0; n < ops && !t.Failed(); n++ {
					h.step(h.rng, modelIDs, true)
				}
				h.compareAll(modelIDs)
				t.Logf("outcomes: %v", h.outcomes)
			})
			t.Run("concurrent", func(t *testing.T) {
				h := newModelHarness(t, mode, seed+uint64(i)+100)
				testModelConcurrent(t, h, seed+uint64(i)+100, ops/2)
			})
			t.Run("racing-moves", func(t *testing.T) {
				h := newModelHarness(t, mode, seed+uint64(i)+200)
				testModelRacingMoves(t, h, seed+uint64(i)+200)
			})
		})
	}
}

// testModelConcurrent runs goroutines that each own a few IDs and run
// random operations on them against both backends: per ID the order of
// the calls is the same in both, so each result is compared. Some
// goroutines list and iterate meanwhile, whose results cannot be compared
// but must not fail.
func testModelConcurrent(t *testing.T, h *modelHarness, seed uint64, ops int) {
	const workers = 6
	var all []string
	var wg sync.WaitGroup
	for w := range workers {
		ids := []string{fmt.Sprintf("w%d-a", w), fmt.Sprintf("w%d/b", w), fmt.Sprintf("..w%d", w), fmt.Sprintf("w%d-c", w)}
		all = append(all, ids...)
		r := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for n := 0; n < ops/workers && !t.Failed(); n++ {
				h.step(r, ids, false)
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		r := rand.New(rand.NewPCG(seed, 99))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			s := randState(r, 0)
			if _, err := h.fs.ListMessages(h.ctx, s, metastorage.MessageListOptions{SortBy: metastorage.SortByUpdated}); err != nil {
				t.Errorf("concurrent ListMessages(%v): %v", s, err)
			}
			if _, err := h.iterate(h.fs, s, 2); err != nil {
				t.Errorf("concurrent iterate(%v): %v", s, err)
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	h.compareAll(all)
}

// testModelRacingMoves stores shared messages, then lets goroutines race
// to move each from its state to one of their choice, round after round:
// exactly one wins each race, the others get ErrStateConflict, and the
// message ends in the winner's state, in exactly one state directory.
func testModelRacingMoves(t *testing.T, h *modelHarness, seed uint64) {
	const (
		racers = 5
		rounds = 6
	)
	ids := []string{"race-1", "race/2", "..race3", "race-4"}
	for _, id := range ids {
		md := metastorage.MessageMetadata{State: metastorage.StateIncoming, Created: randTime(h.rng), Priority: 1}
		if err := h.ref.StoreMeta(h.ctx, id, md); err != nil {
			t.Fatal(err)
		}
		if err := h.fs.StoreMeta(h.ctx, id, md); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(seed, 7))
	for round := range rounds {
		for _, id := range ids {
			cur, err := h.ref.GetMeta(h.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			from := cur.State
			targets := make([]metastorage.QueueState, racers)
			for g := range targets {
				targets[g] = metastorage.QueueState((int(from) + 1 + r.IntN(metastorage.NumStates-1)) % metastorage.NumStates)
			}
			errs := make([]error, racers)
			var start, wg sync.WaitGroup
			start.Add(1)
			for g := range racers {
				wg.Go(func() {
					start.Wait()
					errs[g] = h.fs.MoveToState(h.ctx, id, from, targets[g])
				})
			}
			start.Done()
			wg.Wait()
			winner := -1
			for g, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("round %d %q: racers %d and %d both moved it from %v", round, id, winner, g, from)
				case err == nil:
					winner = g
				case !errors.Is(err, metastorage.ErrStateConflict):
					t.Errorf("round %d %q: racer %d: %v, want nil or ErrStateConflict", round, id, g, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d %q: nobody won the race out of %v: %v", round, id, from, errs)
			}
			if err := h.ref.MoveToState(h.ctx, id, from, targets[winner]); err != nil {
				t.Fatal(err)
			}
			var in []metastorage.QueueState
			file, _ := h.fs.fileName("test", id)
			for _, s := range metastorage.States() {
				if _, err := h.fs.fs.Lstat(filepath.Join(h.fs.Dir(), s.String(), file)); err == nil {
					in = append(in, s)
				}
			}
			if len(in) != 1 || in[0] != targets[winner] {
				t.Errorf("round %d %q: file in states %v, want only the winner's %v", round, id, in, targets[winner])
			}
		}
		h.compareAll(ids)
	}
}
