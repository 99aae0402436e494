package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// FindingKind classifies what a recovery scan found.
type FindingKind string

// The kinds of findings of a recovery scan.
const (
	OrphanTemp     FindingKind = "orphan-temp"     // a temp file no writer will rename: removed
	InterruptedPut FindingKind = "interrupted-put" // a complete temp file whose rename a crash cut off: put in place
	Corrupt        FindingKind = "corrupt"         // a message file that is not valid metadata: moved to corrupt/
	NotRegular     FindingKind = "not-regular"     // a symlink or directory under a message's name: moved to corrupt/
	StateMismatch  FindingKind = "state-mismatch"  // no longer reported: a State field that disagrees with its directory is what a move by one rename leaves, not damage
	Duplicate      FindingKind = "duplicate"       // a copy of a message that also lies in another state: older copy moved to corrupt/
	Displaced      FindingKind = "displaced"       // a temp file holding an older record of a message: removed once the file system is synced
	Unreadable     FindingKind = "unreadable"      // a message file that cannot be read (permission denied): left alone, never moved to corrupt/
	UnknownEntry   FindingKind = "unknown-entry"   // a name that is not a message file: left alone
	StrayLock      FindingKind = "stray-lock"      // a file under .locks that is none of the lock files and change counters a Backend makes: left alone
)

// Severity says whether a finding is damage, which a repair (or an
// operator) must fix, or what a healthy directory may hold.
type Severity uint8

// The severities of findings.
const (
	// Damage is what a crash, a failed call or a hand left wrong: a
	// message that is lost, doubled or misplaced until it is repaired.
	Damage Severity = iota + 1
	// Expected is what a live writer keeps on purpose (the records that
	// Performance mode keeps until the file system is synced).
	Expected
	// Unknown is an entry that is not the backend's, left alone.
	Unknown
)

// String returns "damage", "expected" or "unknown".
func (s Severity) String() string {
	switch s {
	case Damage:
		return "damage"
	case Expected:
		return "expected"
	case Unknown:
		return "unknown"
	}
	return "Severity(" + strconv.Itoa(int(s)) + ")"
}

// Severity returns the severity of the findings of kind k.
func (k FindingKind) Severity() Severity {
	switch k {
	case Displaced:
		return Expected
	case UnknownEntry, StrayLock:
		return Unknown
	}
	return Damage
}

// Finding is one thing a recovery scan found, and what it did about it.
type Finding struct {
	Kind     FindingKind
	Path     string // the file concerned
	Detail   string // what was wrong
	Action   string // what was done; empty when nothing was changed
	Repaired bool
}

// Severity returns the severity of the finding's kind.
func (f Finding) Severity() Severity { return f.Kind.Severity() }

// RecoverFromCrash runs the recovery scan synchronously and repairs what it
// finds (see the package documentation). It is safe to run while other
// processes use the directory: it changes a message only under its lock,
// after checking again what it found, and never removes a temp file whose
// writer is alive. Each action is logged.
func (b *Backend) RecoverFromCrash() error {
	_, err := b.Check(context.Background(), true)
	return err
}

// Check runs the recovery scan and returns what it found. With repair it
// fixes each finding as RecoverFromCrash does; without, it changes nothing,
// and reports what a repair of the same files would find and do.
//
// Of the copies of a message found in two or more states, the one that
// keepCopy picks is kept and the others are moved to corrupt/. A State
// field that disagrees with its directory is not damage: the message is in
// its directory's state, its Updated the file's modification time (see
// Backend.MoveToState).
func (b *Backend) Check(ctx context.Context, repair bool) ([]Finding, error) {
	return b.CheckProgress(ctx, repair, nil)
}

// CheckProgress is Check that also calls progress, when not nil, with the
// number of directory entries scanned so far, every 1024 entries and once
// at the end, from the calling goroutine. The scan reads each state
// directory twice, for its temp files first and then whole, and counts
// both.
func (b *Backend) CheckProgress(ctx context.Context, repair bool, progress func(scanned int)) ([]Finding, error) {
	if err := b.begin(ctx, "recover", ""); err != nil {
		return nil, err
	}
	defer b.end()
	if repair {
		if b.cfg.readOnly {
			return nil, fmt.Errorf("recover: %w", ErrReadOnly)
		}
		if p := b.failed.Load(); p != nil {
			return nil, fmt.Errorf("recover: backend refuses writes after a failed fsync, reopen it: %w", *p)
		}
	}
	return b.scan(ctx, repair, progress)
}

// background counts the state directories, and then runs the recovery scan.
func (b *Backend) background(ctx context.Context) {
	for _, s := range metastorage.States() {
		b.count(ctx, s)
	}
	if b.cfg.readOnly || b.cfg.noRecovery {
		return
	}
	if _, err := b.scan(ctx, true, nil); err != nil && ctx.Err() == nil {
		b.log.Error("recovery scan failed", "dir", b.dir, "err", err)
	}
}

type scanner struct {
	b        *Backend
	ctx      context.Context
	repair   bool
	findings []Finding
	where    map[uint64]uint8 // name hash -> bit set of states holding it
	temps    []tempRef        // the temp files found, newest record first
	seen     []tempRef        // displaced records seen before the scan's sync
	// placed are the records that a check without repair found would
	// take the place of damaged message files, by file name.
	placed map[string]placedRecord
	// aside are the paths that a check without repair found would be
	// moved to corrupt/.
	aside    map[string]bool
	synced   bool  // the file system was synced after seen was complete
	syncErr  error // why it could not be: the scan goes on, and returns it
	progress func(scanned int)
	scanned  int
}

func (b *Backend) scan(ctx context.Context, repair bool, progress func(int)) ([]Finding, error) {
	b.recoverMu.Lock()
	defer b.recoverMu.Unlock()
	sc := &scanner{b: b, ctx: ctx, repair: repair, where: make(map[uint64]uint8),
		placed: make(map[string]placedRecord), aside: make(map[string]bool), progress: progress}
	if progress != nil {
		defer func() { progress(sc.scanned) }()
	}
	if err := b.checkLayout(); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if err := sc.tempFiles(); err != nil {
		return sc.findings, err
	}
	for _, s := range metastorage.States() {
		if err := sc.eachEntry(s, sc.entry, true); err != nil {
			return sc.findings, err
		}
	}
	if err := sc.duplicates(); err != nil {
		return sc.findings, err
	}
	if err := sc.locks(); err != nil {
		return sc.findings, err
	}
	return sc.findings, sc.syncErr
}

// eachEntry calls fn with each entry of state s's directory; count says
// whether they count as scanned for the progress.
func (sc *scanner) eachEntry(s metastorage.QueueState, fn func(metastorage.QueueState, fs.DirEntry) error, count bool) error {
	var fnErr error
	err := readDir(sc.ctx, sc.b.fs, sc.b.states[s], 1024, func(ents []fs.DirEntry) error {
		for _, e := range ents {
			if fnErr = fn(s, e); fnErr != nil {
				return fnErr
			}
		}
		if count {
			sc.scanned += len(ents)
			if sc.progress != nil {
				sc.progress(sc.scanned)
			}
		}
		return nil
	})
	if err != nil && err != fnErr && sc.ctx.Err() == nil {
		return fmt.Errorf("recover: %w", err)
	}
	return err
}

// report records a finding and logs it.
func (sc *scanner) report(f Finding) {
	sc.findings = append(sc.findings, f)
	args := []any{"kind", f.Kind, "path", f.Path, "detail", f.Detail}
	if f.Action != "" {
		args = append(args, "action", f.Action)
	}
	if f.Repaired {
		sc.b.stats.recoveryActions.Add(1)
		sc.b.log.Warn("recovery", args...)
	} else if sc.repair {
		sc.b.log.Info("recovery", args...)
	}
}

// isTempName reports whether n is the name of a temp file of this backend or
// another implementation. A message's name never starts with a dot and
// always ends in ".json", so neither kind of temp file name is one.
func isTempName(n string) bool {
	return strings.HasPrefix(n, ".tmp.") || strings.Contains(n, name.Suffix+".tmp.")
}

// tempRef is a temp file found by a scan, and the Updated of the record it
// held then, if any.
type tempRef struct {
	state   metastorage.QueueState
	name    string
	updated time.Time
}

// tempFiles handles the temp files of every state, before the message
// files: one may hold the record that a damaged message file needs. They
// are taken newest record first, so that of several records of a message
// whose file is damaged, the newest takes its place, and the others are
// then older than it. The displaced records found are removed last, after
// a sync of the file system that began once they were all seen.
func (sc *scanner) tempFiles() error {
	for _, s := range metastorage.States() {
		if err := sc.eachEntry(s, sc.tempEntry, true); err != nil {
			return err
		}
	}
	slices.SortStableFunc(sc.temps, func(a, b tempRef) int { return b.updated.Compare(a.updated) })
	for _, t := range sc.temps {
		if err := sc.temp(t.state, t.name); err != nil {
			return err
		}
	}
	return sc.removeDisplaced()
}

// tempEntry records e if it is a temp file.
func (sc *scanner) tempEntry(s metastorage.QueueState, e fs.DirEntry) error {
	n := e.Name()
	if _, ok := name.Decode(n); ok || !isTempName(n) {
		return nil
	}
	t := tempRef{state: s, name: n}
	if md, err := readRecord(sc.b.fs, sc.b.path(s, n), s); err == nil {
		t.updated = md.Updated
	}
	sc.temps = append(sc.temps, t)
	return nil
}

// removeDisplaced removes the displaced records seen, after a sync of the
// file system, each after checking again under its lock that it is still
// one. If the sync fails, they are left.
func (sc *scanner) removeDisplaced() error {
	if len(sc.seen) == 0 || !sc.repair {
		return nil
	}
	sc.b.trackDisplacedOwners(sc.seen)
	if err := sc.b.syncAll(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		for _, t := range sc.seen {
			sc.report(Finding{Kind: Displaced, Path: sc.b.path(t.state, t.name), Detail: "an older record of a message, kept: the sync of the file system before removing it failed"})
		}
		// The Backend refuses writes (see syncAll); the scan reports the
		// rest and repairs what needs no sync of the file system.
		sc.syncErr = fmt.Errorf("recover: %w", err)
		return nil
	}
	sc.synced = true
	for _, t := range sc.seen {
		if err := sc.temp(t.state, t.name); err != nil {
			return err
		}
	}
	return nil
}

// entry handles e if it is anything but a temp file.
func (sc *scanner) entry(s metastorage.QueueState, e fs.DirEntry) error {
	n := e.Name()
	if _, ok := name.Decode(n); !ok {
		if isTempName(n) {
			return nil // handled by tempEntry
		}
		sc.report(Finding{Kind: UnknownEntry, Path: sc.b.path(s, n), Detail: "not a message file name"})
		return nil
	}
	sc.where[nameHash(n)] |= 1 << s
	if !e.Type().IsRegular() {
		return sc.locked(n, func() error { return sc.notRegular(s, n) })
	}
	_, err := sc.record(s, n)
	switch {
	case isNotExist(err):
		return nil
	case isUnreadable(err):
		sc.unreadable(s, n, err)
		return nil
	case errors.Is(err, codec.ErrCorrupt):
		return sc.locked(n, func() error { return sc.corrupt(s, n) })
	case err != nil:
		return fmt.Errorf("recover: %w", err)
	}
	return nil
}

// unreadable reports the message file named file in state s, which err
// says cannot be read. It is left where it is: nothing says it is damaged.
func (sc *scanner) unreadable(s metastorage.QueueState, file string, err error) {
	path := sc.b.path(s, file)
	sc.b.skipUnreadable(path, err)
	sc.findings = append(sc.findings, Finding{Kind: Unreadable, Path: path,
		Detail: "cannot be read (" + pathErrReason(err) + "); left alone until its owner or mode is fixed"})
}

// locked runs fn under the lock of the message whose file name is file.
func (sc *scanner) locked(file string, fn func() error) error {
	sc.b.counts.gate.RLock()
	defer sc.b.counts.gate.RUnlock()
	unlock, err := sc.b.lock(sc.ctx, stripeOf(file))
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	defer unlock()
	return fn()
}

// temp handles a temp file. A temp file's writer holds the lock of its
// message's stripe from the file's creation to its rename, and the stripe
// is in the name of the backend's temp files (".tmp.<stripe>-<random>"),
// or follows from the message's name in other implementations' temp files
// ("<id>.json.tmp.<hex>"). Under that lock, the temp file is no live
// writer's, and what it holds decides (see tempLocked).
func (sc *scanner) temp(s metastorage.QueueState, tmp string) error {
	sc.b.counts.gate.RLock()
	defer sc.b.counts.gate.RUnlock()
	stripe, ok := tempStripe(tmp)
	if !ok {
		// A ".tmp." name that does not say its stripe, which this backend
		// never writes: the stripe is that of the message whose record
		// it holds, if any. One that holds none is never put in place.
		md, err := readRecord(sc.b.fs, sc.b.path(s, tmp), nowhere)
		if isNotExist(err) {
			return nil
		}
		file, encErr := "", err
		if err == nil {
			file, encErr = name.Encode(md.ID)
		}
		if encErr != nil {
			return sc.tempLocked(s, tmp, -1)
		}
		stripe = stripeOf(file)
	}
	unlock, err := sc.b.lock(sc.ctx, stripe)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	defer unlock()
	return sc.tempLocked(s, tmp, stripe)
}

func tempStripe(tmp string) (int, bool) {
	if rest, ok := strings.CutPrefix(tmp, ".tmp."); ok {
		if len(rest) > 3 && rest[2] == '-' {
			n, err := strconv.ParseUint(rest[:2], 16, 8)
			if err == nil && n < numStripes {
				return int(n), true
			}
		}
		return 0, false
	}
	file := tmp[:strings.LastIndex(tmp, name.Suffix+".tmp.")+len(name.Suffix)]
	return stripeOf(file), true
}

// tempLocked handles the temp file tmp of state s, holding the lock of
// stripe held (-1: none, and then the file is never put in place). It is
// read by the rule for s's directory (recordIn), as the message file it
// may have been: a displaced file moved there by one rename holds its
// move's Updated in its time. If it holds a complete record of a message
// of that stripe, and:
//   - the message's file, in any state, is not valid metadata (a power
//     loss can leave a Performance-mode change's file empty, beside the
//     record it displaced, or in another state after a later move): the
//     temp file's record, synced first, takes its place there (written
//     anew, naming that state, if it names another: see finishTemp);
//   - the message's file in s is valid and older, and the temp file's
//     State field names s: a crash cut off the record's rename, which is
//     finished;
//   - the message's file, in any state, is valid and not older than the
//     temp file's Updated field: the temp file is a record the message's
//     file displaced, removed once a sync of the file system has made the
//     message's file durable.
//
// A record this Backend displaced is left to its own flush.
//
// Any other temp file is removed. (A temp file of a message that lies
// nowhere is never put in place: the message may have been deleted since.)
func (sc *scanner) tempLocked(s metastorage.QueueState, tmp string, held int) error {
	path := sc.b.path(s, tmp)
	if sc.b.displaced.has(path) {
		return nil // displaced by this Backend, whose next flush removes it
	}
	md, err := readRecord(sc.b.fs, path, s)
	if isNotExist(err) {
		return nil // renamed or removed by its writer meanwhile
	}
	file, ok := "", false
	if err == nil {
		file, err = name.Encode(md.ID)
		ok = err == nil && stripeOf(file) == held && md.State.Valid()
	}
	if ok {
		if sc.unreadableCopy(file) {
			// The message's file is reported by the entry scan; what the
			// temp file holds cannot be weighed against it.
			return nil
		}
		var cur found
		if p, ok := sc.placed[file]; ok {
			cur = found{ok: true, state: p.state, md: metastorage.MessageMetadata{State: p.state, Updated: p.updated}}
		} else if cur, err = sc.b.locate(file, s, nil); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		// Only a temp file written for s can be a put whose rename was cut
		// off. Any other is a displaced record, weighed by its own fields:
		// its time may be a later write's, not its Updated.
		own, err := readRecord(sc.b.fs, path, nowhere)
		if err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		written, weight := own.State, own.Updated
		switch {
		case cur.ok && cur.err != nil:
			if !sc.repair {
				sc.placed[file] = placedRecord{state: cur.state, updated: md.Updated}
			}
			return sc.finishTemp(s, tmp, md, cur.state, file, "a complete record of %s, whose file is not valid metadata")
		case cur.ok && cur.state == s && written == s && cur.md.Updated.Before(weight):
			return sc.finishTemp(s, tmp, md, s, file, "complete record of %s whose rename a crash cut off")
		case cur.ok && !cur.md.Updated.Before(weight):
			f := Finding{Kind: Displaced, Path: path, Detail: "an older record of " + sc.b.path(cur.state, file) + ", kept until the file system is synced"}
			if sc.repair && !sc.synced {
				sc.seen = append(sc.seen, tempRef{state: s, name: tmp})
				return nil // reported when removed, after the sync
			}
			return sc.removeTemp(f, s)
		}
	}
	return sc.removeTemp(Finding{Kind: OrphanTemp, Path: path, Detail: "temp file of a change that did not complete"}, s)
}

// unreadableCopy reports whether the message file named file cannot be
// read in some state. locate stops at the first copy it finds, which may
// be a readable one.
func (sc *scanner) unreadableCopy(file string) bool {
	for _, s := range metastorage.States() {
		if _, err := sc.record(s, file); isUnreadable(err) {
			return true
		}
	}
	return false
}

// record reads the message file named file in state s, or, in a check
// without repair, the record a repair would have put in its place (see
// placed).
func (sc *scanner) record(s metastorage.QueueState, file string) (metastorage.MessageMetadata, error) {
	if p, ok := sc.placed[file]; ok && p.state == s {
		return metastorage.MessageMetadata{State: s, Updated: p.updated}, nil
	}
	if sc.aside[sc.b.path(s, file)] {
		return metastorage.MessageMetadata{}, fs.ErrNotExist
	}
	return readRecord(sc.b.fs, sc.b.path(s, file), s)
}

// placedRecord is what a repair would put in place of a damaged message
// file in state: a record of the given Updated.
type placedRecord struct {
	state   metastorage.QueueState
	updated time.Time
}

// removeTemp reports f, about a temp file of state s, and when repairing
// removes the file.
func (sc *scanner) removeTemp(f Finding, s metastorage.QueueState) error {
	if sc.repair {
		if err := sc.b.fs.Remove(f.Path); err != nil && !isNotExist(err) {
			return fmt.Errorf("recover: %w", err)
		}
		f.Action, f.Repaired = "removed", true
		if err := sc.b.syncDirs(s); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
	}
	sc.report(f)
	return nil
}

// finishTemp renames the temp file tmp of state s, which holds the record
// md, over the message's file in state to; detail formats the finding's
// detail with that file's path. The temp file is synced first, whatever
// the mode: its writer may not have, and the file it replaces may hold the
// message's only durable record. A record that names another state than
// to is written anew naming to (see rewriteTemp).
func (sc *scanner) finishTemp(s metastorage.QueueState, tmp string, md metastorage.MessageMetadata, to metastorage.QueueState, file, detail string) error {
	path, dst := sc.b.path(s, tmp), sc.b.path(to, file)
	f := Finding{Kind: InterruptedPut, Path: path, Detail: fmt.Sprintf(detail, dst)}
	if sc.repair && md.State != to {
		if err := sc.rewriteTemp(s, tmp, md, to, file); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		f.Action, f.Repaired = "written in place, naming state "+to.String(), true
	} else if sc.repair {
		if err := syncFile(sc.b.fs, path); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		// Across directories, the record's arrival must be durable before
		// its leaving s can be (see moveOrder).
		err := sc.b.order.rename(s, to, func() (bool, error) {
			err := sc.b.change(opRename, path, dst)
			return err == nil && s != to, err
		})
		if err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		f.Action, f.Repaired = "renamed into place", true
		if err := sc.b.syncDirs(to); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
	}
	sc.report(f)
	return nil
}

// rewriteTemp puts the record md of the temp file tmp of state s in place
// of the message's file in state to, written anew with its State field
// naming to, and then removes tmp. Put in place as it is, the record would
// read with the time of its file as its Updated (see recordIn).
func (sc *scanner) rewriteTemp(s metastorage.QueueState, tmp string, md metastorage.MessageMetadata, to metastorage.QueueState, file string) error {
	md.State = to
	data, err := codec.Encode(&md)
	if err != nil {
		return err
	}
	fresh, err := sc.b.writeTemp(to, file, data, true)
	if err != nil {
		return err
	}
	if err := sc.b.change(opRename, fresh, sc.b.path(to, file)); err != nil {
		sc.b.removeTemp(fresh)
		return err
	}
	if err := sc.b.syncDirs(to); err != nil {
		return err
	}
	if err := sc.b.fs.Remove(sc.b.path(s, tmp)); err != nil && !isNotExist(err) {
		return err
	}
	return sc.b.syncDirs(s)
}

func (sc *scanner) notRegular(s metastorage.QueueState, file string) error {
	path := sc.b.path(s, file)
	fi, err := sc.b.fs.Lstat(path)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if fi.Mode().IsRegular() {
		return nil
	}
	return sc.setAside(Finding{Kind: NotRegular, Path: path, Detail: "not a regular file (" + fi.Mode().Type().String() + "); not followed"}, s, file)
}

func (sc *scanner) corrupt(s metastorage.QueueState, file string) error {
	path := sc.b.path(s, file)
	_, err := readRecord(sc.b.fs, path, s)
	if !errors.Is(err, codec.ErrCorrupt) {
		return nil // rewritten or moved meanwhile
	}
	return sc.setAside(Finding{Kind: Corrupt, Path: path, Detail: strings.TrimPrefix(err.Error(), path+": ")}, s, file)
}

// setAside moves a message file to corrupt/<state>/, keeping its name (with
// a numeric suffix if that name is taken there). The state's count drops
// it if it was a regular file (see Backend.change).
func (sc *scanner) setAside(f Finding, s metastorage.QueueState, file string) error {
	if sc.repair {
		dst, err := sc.b.moveToCorrupt(s, file)
		if err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		sc.b.stats.corruptFiles.Add(1)
		f.Action, f.Repaired = "moved to "+dst, true
	} else {
		sc.aside[f.Path] = true
	}
	sc.report(f)
	return nil
}

func (b *Backend) moveToCorrupt(s metastorage.QueueState, file string) (string, error) {
	dir := filepath.Join(b.dir, "corrupt")
	if err := b.ensureDir(dir); err != nil {
		return "", err
	}
	dir = filepath.Join(dir, s.String())
	if err := b.ensureDir(dir); err != nil {
		return "", err
	}
	dst, err := b.renameToCorrupt(s, file, dir)
	if err != nil {
		return dst, err
	}
	return dst, b.syncDirs(s)
}

// renameToCorrupt renames the message file into the corrupt directory dir
// and, in the durable modes, makes its new entry durable before any fsync
// of the state's directory can make its removal durable.
func (b *Backend) renameToCorrupt(s metastorage.QueueState, file, dir string) (string, error) {
	b.order.out[s].RLock()
	defer b.order.out[s].RUnlock()
	src := b.path(s, file)
	for i := 0; ; i++ {
		dst := filepath.Join(dir, file)
		if i > 0 {
			dst += "." + strconv.Itoa(i)
		}
		err := b.change(opRenameNoReplace, src, dst)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if b.durable() {
			if err := syncPath(b.fs, dir); err != nil {
				b.fail(err)
				return dst, err
			}
		}
		return dst, nil
	}
}

// duplicates resolves the messages found in more than one state: the copy
// that keepCopy picks stays, and the others are moved to corrupt/.
func (sc *scanner) duplicates() error {
	multi := 0
	for _, bits := range sc.where {
		if bits&(bits-1) != 0 {
			multi++
		}
	}
	if multi == 0 {
		return nil
	}
	done := make(map[string]bool)
	for _, s := range metastorage.States() {
		err := sc.eachEntry(s, func(s metastorage.QueueState, e fs.DirEntry) error {
			n := e.Name()
			bits := sc.where[nameHash(n)]
			if bits&(bits-1) == 0 || done[n] {
				return nil
			}
			if _, ok := name.Decode(n); !ok {
				return nil
			}
			done[n] = true
			return sc.locked(n, func() error { return sc.duplicate(n) })
		}, false)
		if err != nil {
			return err
		}
	}
	return nil
}

// replica is one copy of a message found in two or more states.
type replica struct {
	s  metastorage.QueueState
	md metastorage.MessageMetadata
}

// keepCopy returns the index of the copy of a message to keep, of two or
// more in distinct states, each read by the format's rule (see recordIn):
// the one with the newest Updated, the latest change. Two copies arise
// only from outside (a copy by hand) or from a crash of an older version,
// which renamed a file between directories and rewrote it after: a move
// of this version is one rename, and returns once both directories are
// synced, so either copy is a state the message was in. On a tie (the
// same Updated, as byte copies and two names of one file have), the copy
// in hold, so that resolving the copies never releases a message from
// hold; then the one in the first state in the order incoming, active,
// deferred, bounce, archived, so that a message's work is done again
// rather than skipped. The State fields do not decide: a field that
// disagrees with its directory is what a move leaves.
func keepCopy(copies []replica) int {
	better := func(c, k replica) bool {
		if d := c.md.Updated.Compare(k.md.Updated); d != 0 {
			return d > 0
		}
		if (c.s == metastorage.StateHold) != (k.s == metastorage.StateHold) {
			return c.s == metastorage.StateHold
		}
		return c.s < k.s
	}
	keep := 0
	for i, c := range copies {
		if better(c, copies[keep]) {
			keep = i
		}
	}
	return keep
}

func (sc *scanner) duplicate(file string) error {
	var copies []replica
	var unreadable []metastorage.QueueState
	for _, s := range metastorage.States() {
		md, err := sc.record(s, file)
		switch {
		case err == nil:
			copies = append(copies, replica{s, md})
		case isUnreadable(err):
			unreadable = append(unreadable, s)
		case !isNotExist(err) && !errors.Is(err, codec.ErrCorrupt):
			return fmt.Errorf("recover: %w", err)
		}
	}
	if len(unreadable) > 0 {
		// Which copy to keep cannot be known: leave them all.
		if len(copies)+len(unreadable) < 2 {
			return nil
		}
		for _, c := range copies {
			sc.report(Finding{Kind: Duplicate, Path: sc.b.path(c.s, file),
				Detail: fmt.Sprintf("message also in state %s, whose copy cannot be read; not resolved", unreadable[0])})
		}
		return nil
	}
	if len(copies) < 2 {
		return nil
	}
	keep := keepCopy(copies)
	for i, c := range copies {
		if i == keep {
			continue
		}
		f := Finding{Kind: Duplicate, Path: sc.b.path(c.s, file),
			Detail: fmt.Sprintf("message also in state %s, which is kept (Updated %s against %s)",
				copies[keep].s, copies[keep].md.Updated.Format("2006-01-02T15:04:05.999999999Z07:00"), c.md.Updated.Format("2006-01-02T15:04:05.999999999Z07:00"))}
		if err := sc.setAside(f, c.s, file); err != nil {
			return err
		}
	}
	return nil
}

// locks reports files under .locks that are neither lock stripes nor the
// change counters.
func (sc *scanner) locks() error {
	dir := filepath.Join(sc.b.dir, ".locks")
	d, err := sc.b.fs.OpenDir(dir)
	if isNotExist(err) && sc.b.cfg.readOnly {
		return nil // never opened for writing
	}
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, e := range ents {
		if (e.Name() == changesName || e.Name() == openingName || e.Name() == backendsName) && e.Type().IsRegular() {
			continue
		}
		n, ok := strings.CutPrefix(e.Name(), "stripe-")
		if i, err := strconv.Atoi(n); ok && err == nil && i >= 0 && i < numStripes && len(n) == 2 {
			continue
		}
		sc.report(Finding{Kind: StrayLock, Path: filepath.Join(dir, e.Name()), Detail: "not a lock stripe"})
	}
	return nil
}
