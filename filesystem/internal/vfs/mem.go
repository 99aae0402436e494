package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Mem is a strict in-memory file system for tests. It implements FS and
// SyncFS, is safe for concurrent use, and keeps two views of its contents:
//
//   - what the program sees: the tree of directories, regular files and
//     symbolic links as the calls so far have left it;
//   - what would survive a power loss: each regular file's data as of the
//     file's last File.Sync, and each directory's entries as of the
//     directory's last Sync.
//
// CrashClone returns a new Mem holding only the second view, so that a test
// can crash the program at any point and check what it finds on restart.
//
// # Crash rules
//
// Only synced changes survive a crash:
//
//   - A file's data survives as of the file's last Sync, through any File
//     open on it. Data written after it is lost; a file never synced is
//     empty. A Truncate is like a write: the program sees the new size at
//     once, and a crash before the file's next Sync forgets it.
//   - A directory's entries survive as of the directory's last Sync. A new
//     name (Create, OpenAppend of a missing name, Mkdir, OpenLock, Symlink,
//     the new name of a rename) survives only if its directory was synced
//     after the change; so does the disappearance of a name (Remove, the
//     old name of a rename, a name a rename replaced). A new directory
//     therefore survives only if its parent was synced after the Mkdir.
//   - A rename between two directories is two changes, one in each. With
//     only the new directory synced, both names survive, naming one file;
//     with only the old directory synced, neither does. After
//     JournalRenames, it is one change, as a journaling file system (ext4,
//     XFS) commits it: a Sync of either directory makes both durable.
//   - After JournalMetadata, metadata is ordered, as a file system that
//     journals it in order commits it: every change of a directory's
//     entries and every time SetModTimeIn sets is a numbered change (a
//     rename or an exchange is one), and a Sync of a file or directory
//     makes durable every change numbered up to the last one that changed
//     that file or directory, in every directory; a Sync of a file or
//     directory that no change touched makes none durable. File data, and
//     the time a write sets, stay durable only through the file's own
//     Sync.
//   - A directory left with two names that way, which real file systems do
//     not allow, survives under the first of them that a breadth-first walk
//     of the crash image in name order reaches; the other names are dropped.
//   - Permission changes (Chmod) are durable at once.
//   - A file's modification time, set by a write or by SetModTimeIn,
//     survives as of the file's last Sync, as its data does: a crash
//     before it keeps the time the file had then.
//   - SyncAll makes everything durable.
//
// The crash image is the pessimistic one, exactly the synced state. A real
// file system may also keep any part of what was not synced; Mem does not
// explore those states.
//
// # Paths
//
// Names are slash-separated paths, in the host's syntax: on Windows a
// volume name is ignored and '\\' separates too. The root "/" always
// exists and is the working directory, so a relative name is resolved from
// it. "." and ".." are resolved element by element, as Linux does: "/f/.."
// fails with ENOTDIR when /f is a regular file.
//
// # Differences from Linux
//
// Errors are those Linux and the os package return for the same call, with
// these exceptions:
//
//   - Symbolic links (made with Symlink) are never followed. Where Linux
//     would follow one, as a non-final element of a name or as the final
//     element followed by a slash, the call fails with ELOOP instead.
//   - Permissions are checked as for a non-root owner of every file, even
//     when the test runs as root: opening needs the owner read bit (write
//     for OpenAppend, read and write for OpenLock), Truncate needs the owner
//     write bit, resolving a name in a directory needs the directory's owner
//     execute bit, and adding or removing a name needs its owner write bit.
//     So opening a file of mode 000 fails with EACCES.
//   - Modes are stored as given, masked with fs.ModePerm; no umask applies.
//   - A call on a closed File or Lock fails with an error that matches both
//     fs.ErrClosed, as the os package reports it, and syscall.EBADF.
//   - FileInfo.Sys returns nil and a directory's size is 0.
//   - File.ReadDir lists the names the directory held at the first ReadDir
//     call on that File, sorted, skipping those removed since; names added
//     after that first call are not listed. No name is listed twice.
//
// The zero Mem is an empty file system ready to use.
type Mem struct {
	mu   sync.Mutex
	root *memNode

	journalRenames bool
	renames        []memRename // renames between directories, not yet durable in both

	journalMetadata bool
	metaSeq         uint64    // the metadata changes logged so far
	metaLog         []memMeta // the metadata changes not yet durable, in order
}

// memMeta is a metadata change that the ordered-metadata model logs: a
// directory entry, or else a file's modification time.
type memMeta struct {
	seq     uint64
	entry   memEntry
	file    *memNode
	modTime time.Time
}

// JournalMetadata makes the metadata of m ordered, as a file system that
// journals it in order (ext4 with a journal, XFS) keeps it: a later Sync
// of a file or directory makes durable every metadata change made up to
// the last one that changed that file or directory, in every directory;
// see the crash rules.
func (m *Mem) JournalMetadata() {
	m.lock()
	defer m.mu.Unlock()
	m.journalMetadata = true
}

// commitMeta makes durable the logged metadata changes up to number seq.
func (m *Mem) commitMeta(seq uint64) {
	i := 0
	for ; i < len(m.metaLog) && m.metaLog[i].seq <= seq; i++ {
		c := m.metaLog[i]
		switch e := c.entry; {
		case e.dir == nil:
			c.file.durableModTime = c.modTime
		case e.node == nil:
			delete(e.dir.durable, e.name)
		default:
			e.dir.durable[e.name] = e.node
		}
	}
	m.metaLog = slices.Delete(m.metaLog, 0, i)
}

// memRename is a rename of node from name old in directory odir to name nw
// in directory ndir.
type memRename struct {
	odir, ndir *memNode
	old, nw    string
	node       *memNode
}

// JournalRenames makes each later rename between two directories one
// change that a Sync of either directory makes durable whole, as a
// journaling file system commits it; see the crash rules.
func (m *Mem) JournalRenames() {
	m.lock()
	defer m.mu.Unlock()
	m.journalRenames = true
}

// syncRenames makes durable the other half of every rename that involves
// the directory d, which is being synced. The other directory has not been
// synced since the rename (that would have made the rename durable whole),
// so its durable entries still predate it.
func (m *Mem) syncRenames(d *memNode) {
	keep := m.renames[:0]
	for _, r := range m.renames {
		switch d {
		case r.odir:
			r.ndir.durable[r.nw] = r.node
		case r.ndir:
			if r.odir.durable[r.old] == r.node {
				delete(r.odir.durable, r.old)
			}
		default:
			keep = append(keep, r)
		}
	}
	clear(m.renames[len(keep):])
	m.renames = keep
}

// Owner permission bits, the only ones Mem checks.
const (
	permR = 0o400
	permW = 0o200
	permX = 0o100
)

// memNode is an inode: a directory, a regular file or a symbolic link.
type memNode struct {
	typ     fs.FileMode // 0, fs.ModeDir or fs.ModeSymlink
	perm    fs.FileMode
	modTime time.Time

	// Directories: the entries the program sees, and those as of the last
	// Sync of the directory.
	entries, durable map[string]*memNode

	// Regular files: the data the program sees, and that as of the last
	// Sync of the file; the Lock holding the file's flock, if any.
	data, durableData []byte
	durableModTime    time.Time
	locker            *memLock
	sharers           map[*memLock]bool // the Locks holding the flock shared
	shared            []uint64          // the memory MapShared maps, once it has

	// Symbolic links.
	target string

	// metaSeq is the number of the last logged metadata change of the
	// node (see JournalMetadata): its entries, or its time.
	metaSeq uint64
}

// NewMem returns an empty Mem: a root directory of mode 0755 and nothing
// else.
func NewMem() *Mem {
	m := new(Mem)
	m.lock()
	m.mu.Unlock()
	return m
}

// lock locks m and makes the zero Mem ready to use.
func (m *Mem) lock() {
	m.mu.Lock()
	if m.root == nil {
		m.root = newDir(0o755)
	}
}

func newDir(perm fs.FileMode) *memNode {
	return &memNode{
		typ:     fs.ModeDir,
		perm:    perm & fs.ModePerm,
		modTime: time.Now(),
		entries: make(map[string]*memNode),
		durable: make(map[string]*memNode),
	}
}

func newFile(perm fs.FileMode) *memNode {
	now := time.Now()
	return &memNode{perm: perm & fs.ModePerm, modTime: now, durableModTime: now}
}

func (n *memNode) isDir() bool { return n.typ == fs.ModeDir }

// can reports whether the owner has every permission bit of want.
func (n *memNode) can(want fs.FileMode) bool { return n.perm&want == want }

// info describes n under the name name.
func (n *memNode) info(name string) fs.FileInfo {
	fi := &memInfo{name: name, mode: n.typ | n.perm, modTime: n.modTime, node: n}
	switch n.typ {
	case 0:
		fi.size = int64(len(n.data))
	case fs.ModeSymlink:
		fi.size = int64(len(n.target))
	}
	return fi
}

// memEntry is a directory entry: name in dir refers to node, or to nothing
// if node is nil.
type memEntry struct {
	dir  *memNode
	name string
	node *memNode
}

// setEntry makes name in directory dir refer to child, or removes it if
// child is nil.
func (m *Mem) setEntry(dir *memNode, name string, child *memNode) {
	m.setEntries(memEntry{dir, name, child})
}

// setEntries sets the entries es as one change, which the ordered-metadata
// model logs whole (see JournalMetadata).
func (m *Mem) setEntries(es ...memEntry) {
	for _, e := range es {
		if e.node == nil {
			delete(e.dir.entries, e.name)
		} else {
			e.dir.entries[e.name] = e.node
		}
		e.dir.modTime = time.Now()
	}
	if !m.journalMetadata {
		return
	}
	cs := make([]memMeta, len(es))
	for i, e := range es {
		cs[i] = memMeta{entry: e}
	}
	m.logMeta(cs...)
}

// logMeta logs the metadata changes cs as one numbered change, which
// each node they touch records as its last (see JournalMetadata).
func (m *Mem) logMeta(cs ...memMeta) {
	m.metaSeq++
	for _, c := range cs {
		c.seq = m.metaSeq
		m.metaLog = append(m.metaLog, c)
		if c.entry.dir != nil {
			c.entry.dir.metaSeq = m.metaSeq
		} else {
			c.file.metaSeq = m.metaSeq
		}
	}
}

// lastKind is the kind of a name's final element.
type lastKind int

const (
	lastNormal lastKind = iota // an ordinary name
	lastDot                    // "."
	lastDotDot                 // ".."
	lastRoot                   // no element at all: "/"
)

// memPath is a parsed name.
type memPath struct {
	dirs  []string // the elements before the last
	last  string   // the last element; empty for lastRoot
	kind  lastKind
	slash bool // whether a slash follows the last element
}

// isSeparator reports whether r separates the elements of a path: '/', and
// on Windows '\\' too.
func isSeparator(r rune) bool { return r < utf8.RuneSelf && os.IsPathSeparator(uint8(r)) }

// parsePath splits name into its elements.
func parsePath(name string) (memPath, syscall.Errno) {
	if name == "" {
		return memPath{}, syscall.ENOENT
	}
	name = name[len(filepath.VolumeName(name)):]
	var elems []string
	for e := range strings.FieldsFuncSeq(name, isSeparator) {
		elems = append(elems, e)
	}
	if len(elems) == 0 {
		return memPath{kind: lastRoot}, 0
	}
	p := memPath{
		dirs:  elems[:len(elems)-1],
		last:  elems[len(elems)-1],
		slash: os.IsPathSeparator(name[len(name)-1]),
	}
	switch p.last {
	case ".":
		p.kind = lastDot
	case "..":
		p.kind = lastDotDot
	}
	return p, 0
}

// walk resolves the elements of p before the last one. It returns the chain
// of directories from the root to the one that holds the last element.
func (m *Mem) walk(p memPath) ([]*memNode, syscall.Errno) {
	chain := []*memNode{m.root}
	for _, elem := range p.dirs {
		dir := chain[len(chain)-1]
		if !dir.can(permX) {
			return nil, syscall.EACCES
		}
		switch elem {
		case ".":
			continue
		case "..":
			if len(chain) > 1 {
				chain = chain[:len(chain)-1]
			}
			continue
		}
		n := dir.entries[elem]
		switch {
		case n == nil:
			return nil, syscall.ENOENT
		case n.typ == fs.ModeSymlink:
			return nil, syscall.ELOOP
		case !n.isDir():
			return nil, syscall.ENOTDIR
		}
		chain = append(chain, n)
	}
	if p.kind != lastRoot && !chain[len(chain)-1].can(permX) {
		return nil, syscall.EACCES
	}
	return chain, 0
}

// node returns the node p's last element names, nil if there is none.
func (p memPath) node(chain []*memNode) *memNode {
	dir := chain[len(chain)-1]
	switch p.kind {
	case lastDot, lastRoot:
		return dir
	case lastDotDot:
		if len(chain) > 1 {
			return chain[len(chain)-2]
		}
		return dir
	}
	return dir.entries[p.last]
}

// resolve parses and walks name.
func (m *Mem) resolve(name string) (memPath, []*memNode, syscall.Errno) {
	p, errno := parsePath(name)
	if errno != 0 {
		return p, nil, errno
	}
	chain, errno := m.walk(p)
	return p, chain, errno
}

// resolved is a name resolved: by resolve, or by resolveIn.
type resolved struct {
	p     memPath
	chain []*memNode
	errno syscall.Errno
}

// at resolves name.
func (m *Mem) at(name string) resolved {
	p, chain, errno := m.resolve(name)
	return resolved{p, chain, errno}
}

// atIn resolves name in the directory dir, an open directory of m, as a
// path of one element whose chain is dir alone, and returns the path of
// name in it.
func (m *Mem) atIn(dir File, name string) (resolved, string) {
	d, ok := dir.(*memFile)
	if !ok || d.m != m {
		return resolved{errno: syscall.EBADF}, name
	}
	full := d.name + string(filepath.Separator) + name
	var errno syscall.Errno
	switch {
	case d.closed:
		errno = syscall.EBADF
	case !d.node.isDir():
		errno = syscall.ENOTDIR
	case name == "" || name == "." || name == ".." || strings.ContainsFunc(name, isSeparator):
		errno = syscall.EINVAL
	case !d.node.can(permX):
		errno = syscall.EACCES
	}
	return resolved{memPath{last: name}, []*memNode{d.node}, errno}, full
}

// lookup returns the node name names, without following a symbolic link.
func (m *Mem) lookup(name string) (*memNode, syscall.Errno) { return m.lookupAt(m.at(name)) }

// lookupAt is lookup of a resolved name.
func (m *Mem) lookupAt(r resolved) (*memNode, syscall.Errno) {
	p, chain, errno := r.p, r.chain, r.errno
	if errno != 0 {
		return nil, errno
	}
	n := p.node(chain)
	switch {
	case n == nil:
		return nil, syscall.ENOENT
	case !p.slash || p.kind != lastNormal || n.isDir():
		return n, 0
	case n.typ == fs.ModeSymlink:
		return nil, syscall.ELOOP // Linux would follow it
	}
	return nil, syscall.ENOTDIR
}

func pathError(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func linkError(op, oldname, newname string, err error) error {
	return &os.LinkError{Op: op, Old: oldname, New: newname, Err: err}
}

// Create implements FS.
func (m *Mem) Create(name string, perm fs.FileMode) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	n, errno := m.create(m.at(name), perm)
	if errno != 0 {
		return nil, pathError("open", name, errno)
	}
	return &memFile{m: m, node: n, name: name, writable: true}, nil
}

// create does open(2) with O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW.
func (m *Mem) create(r resolved, perm fs.FileMode) (*memNode, syscall.Errno) {
	p, chain, errno := r.p, r.chain, r.errno
	switch {
	case errno != 0:
		return nil, errno
	case p.kind != lastNormal:
		return nil, syscall.EEXIST
	case p.slash:
		return nil, syscall.EISDIR
	}
	dir := chain[len(chain)-1]
	if dir.entries[p.last] != nil {
		return nil, syscall.EEXIST
	}
	if !dir.can(permW) {
		return nil, syscall.EACCES
	}
	n := newFile(perm)
	m.setEntry(dir, p.last, n)
	return n, 0
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	n, errno := m.lookup(name)
	if errno == 0 {
		errno = n.readable()
	}
	if errno != 0 {
		return nil, pathError("open", name, errno)
	}
	return &memFile{m: m, node: n, name: name, readable: true}, nil
}

// readable returns why n cannot be opened for reading, or 0 if it can.
func (n *memNode) readable() syscall.Errno {
	switch {
	case n.typ == fs.ModeSymlink:
		return syscall.ELOOP
	case !n.can(permR):
		return syscall.EACCES
	case n.isDir():
		return syscall.EISDIR
	}
	return 0
}

// OpenIn implements FS.
func (m *Mem) OpenIn(dir File, name string) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	n, full, errno := m.lookupIn(dir, name)
	if errno == 0 {
		errno = n.readable()
	}
	if errno != 0 {
		return nil, pathError("open", full, errno)
	}
	return &memFile{m: m, node: n, name: full, readable: true}, nil
}

// SetModTimeIn implements ModTimeSetter. The new time is durable at the
// file's next Sync (see the crash rules).
func (m *Mem) SetModTimeIn(dir File, name string, t time.Time) error {
	m.lock()
	defer m.mu.Unlock()
	n, full, errno := m.lookupIn(dir, name)
	if errno != 0 {
		return pathError("utimensat", full, errno)
	}
	n.modTime = t
	if m.journalMetadata {
		m.logMeta(memMeta{file: n, modTime: t})
	}
	return nil
}

// LstatIn implements FS.
func (m *Mem) LstatIn(dir File, name string) (fs.FileInfo, error) {
	m.lock()
	defer m.mu.Unlock()
	n, full, errno := m.lookupIn(dir, name)
	if errno != 0 {
		return nil, pathError("lstat", full, errno)
	}
	return n.info(name), nil
}

// lookupIn returns the node name names in the directory dir, an open
// directory of m, and the path of name in it.
func (m *Mem) lookupIn(dir File, name string) (*memNode, string, syscall.Errno) {
	d, ok := dir.(*memFile)
	if !ok || d.m != m {
		return nil, name, syscall.EBADF
	}
	full := d.name + string(filepath.Separator) + name
	switch {
	case d.closed:
		return nil, full, syscall.EBADF
	case !d.node.isDir():
		return nil, full, syscall.ENOTDIR
	case name == "" || name == "." || name == ".." || strings.ContainsFunc(name, isSeparator):
		return nil, full, syscall.EINVAL
	case !d.node.can(permX):
		return nil, full, syscall.EACCES
	}
	n := d.node.entries[name]
	if n == nil {
		return nil, full, syscall.ENOENT
	}
	return n, full, 0
}

// OpenAppend implements FS. Its File writes at the end of the file's data on
// every Write, wherever the data ends by then.
func (m *Mem) OpenAppend(name string, perm fs.FileMode) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	n, errno := m.openCreate(m.at(name), perm, permW)
	if errno != 0 {
		return nil, pathError("open", name, errno)
	}
	return &memFile{m: m, node: n, name: name, writable: true, appending: true}, nil
}

// OpenDir implements FS.
func (m *Mem) OpenDir(name string) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	return m.openDir(m.at(name), name)
}

// openDir is OpenDir of a resolved name, whose path is name.
func (m *Mem) openDir(r resolved, name string) (File, error) {
	n, errno := m.lookupAt(r)
	switch {
	case errno != 0:
	case !n.isDir():
		errno = syscall.ENOTDIR
	case !n.can(permR):
		errno = syscall.EACCES
	}
	if errno != 0 {
		return nil, pathError("open", name, errno)
	}
	return &memFile{m: m, node: n, name: name, readable: true}, nil
}

// Rename implements FS as os.Rename does: besides what rename(2) refuses,
// it refuses to replace a directory, with EEXIST.
func (m *Mem) Rename(oldname, newname string) error {
	m.lock()
	defer m.mu.Unlock()
	if nn, errno := m.lookup(newname); errno == 0 && nn.isDir() {
		on, errno := m.lookup(oldname)
		if errno == 0 && (oldname == newname || on != nn) {
			errno = syscall.EEXIST
		}
		if errno != 0 {
			return linkError("rename", oldname, newname, errno)
		}
	}
	if errno := m.rename(m.at(oldname), m.at(newname), false); errno != 0 {
		return linkError("rename", oldname, newname, errno)
	}
	return nil
}

// RenameNoReplace implements FS as renameat2(2) with RENAME_NOREPLACE does.
func (m *Mem) RenameNoReplace(oldname, newname string) error {
	m.lock()
	defer m.mu.Unlock()
	if errno := m.rename(m.at(oldname), m.at(newname), true); errno != 0 {
		return linkError("renameat2", oldname, newname, errno)
	}
	return nil
}

// Exchange implements FS as renameat2(2) with RENAME_EXCHANGE does, for
// names that are not directories (EINVAL otherwise, which the backend never
// asks for). The swap of the two entries is durable in each directory once
// that directory is synced, like any other entry.
func (m *Mem) Exchange(oldname, newname string) error {
	m.lock()
	defer m.mu.Unlock()
	if errno := m.exchange(m.at(oldname), m.at(newname)); errno != 0 {
		return linkError("renameat2", oldname, newname, errno)
	}
	return nil
}

func (m *Mem) exchange(or, nr resolved) syscall.Errno {
	op, ochain, errno := or.p, or.chain, or.errno
	if errno != 0 {
		return errno
	}
	np, nchain, errno := nr.p, nr.chain, nr.errno
	if errno != 0 {
		return errno
	}
	if op.kind != lastNormal || np.kind != lastNormal {
		return syscall.EBUSY
	}
	odir, ndir := ochain[len(ochain)-1], nchain[len(nchain)-1]
	on, nn := odir.entries[op.last], ndir.entries[np.last]
	switch {
	case on == nil || nn == nil:
		return syscall.ENOENT
	case on.isDir() || nn.isDir():
		return syscall.EINVAL
	case !odir.can(permW) || !ndir.can(permW):
		return syscall.EACCES
	case on == nn:
		return 0
	}
	m.setEntries(memEntry{odir, op.last, nn}, memEntry{ndir, np.last, on})
	return 0
}

// rename does rename(2), or renameat2(2) with RENAME_NOREPLACE, checking
// in the order Linux does.
func (m *Mem) rename(or, nr resolved, noReplace bool) syscall.Errno {
	op, ochain, errno := or.p, or.chain, or.errno
	if errno != 0 {
		return errno
	}
	np, nchain, errno := nr.p, nr.chain, nr.errno
	if errno != 0 {
		return errno
	}
	if op.kind != lastNormal {
		return syscall.EBUSY
	}
	if np.kind != lastNormal {
		if noReplace {
			return syscall.EEXIST
		}
		return syscall.EBUSY
	}
	odir, ndir := ochain[len(ochain)-1], nchain[len(nchain)-1]
	on, nn := odir.entries[op.last], ndir.entries[np.last]
	switch {
	case on == nil:
		return syscall.ENOENT
	case noReplace && nn != nil:
		return syscall.EEXIST
	case !on.isDir() && (op.slash || np.slash):
		return syscall.ENOTDIR
	case odir != ndir && slices.Contains(nchain, on):
		return syscall.EINVAL // on would move into itself
	case odir != ndir && nn != nil && slices.Contains(ochain, nn):
		return syscall.ENOTEMPTY // nn holds on
	case on == nn:
		return 0
	}
	if errno := renameAllowed(odir, on, ndir, nn); errno != 0 {
		return errno
	}
	m.setEntries(memEntry{odir, op.last, nil}, memEntry{ndir, np.last, on})
	if m.journalRenames && odir != ndir {
		m.renames = append(m.renames, memRename{odir: odir, ndir: ndir, old: op.last, nw: np.last, node: on})
	}
	return 0
}

// renameAllowed checks the permissions and types of a rename of on in odir
// to nn, nil if absent, in ndir.
func renameAllowed(odir, on, ndir, nn *memNode) syscall.Errno {
	switch {
	case !odir.can(permW) || !ndir.can(permW):
		return syscall.EACCES
	case nn != nil && on.isDir() && !nn.isDir():
		return syscall.ENOTDIR
	case nn != nil && !on.isDir() && nn.isDir():
		return syscall.EISDIR
	case on.isDir() && odir != ndir && !on.can(permW):
		return syscall.EACCES // its ".." changes
	case nn != nil && nn.isDir() && len(nn.entries) > 0:
		return syscall.ENOTEMPTY
	}
	return 0
}

// Remove implements FS as os.Remove does: it tries unlink(2), then rmdir(2),
// and reports the error of rmdir unless that is ENOTDIR.
func (m *Mem) Remove(name string) error {
	m.lock()
	defer m.mu.Unlock()
	if errno := m.remove(m.at(name)); errno != 0 {
		return pathError("remove", name, errno)
	}
	return nil
}

// remove does what os.Remove does.
func (m *Mem) remove(r resolved) syscall.Errno {
	errno := m.unlink(r)
	if errno == 0 {
		return 0
	}
	errRmdir := m.rmdir(r)
	if errRmdir == 0 {
		return 0
	}
	if errRmdir != syscall.ENOTDIR {
		errno = errRmdir
	}
	return errno
}

// unlink does unlink(2).
func (m *Mem) unlink(r resolved) syscall.Errno {
	p, chain, errno := r.p, r.chain, r.errno
	if errno != 0 {
		return errno
	}
	if p.kind != lastNormal {
		return syscall.EISDIR
	}
	dir := chain[len(chain)-1]
	n := dir.entries[p.last]
	switch {
	case n == nil:
		return syscall.ENOENT
	case p.slash && n.isDir():
		return syscall.EISDIR
	case p.slash:
		return syscall.ENOTDIR
	case !dir.can(permW):
		return syscall.EACCES
	case n.isDir():
		return syscall.EISDIR
	}
	m.setEntry(dir, p.last, nil)
	return 0
}

// rmdir does rmdir(2).
func (m *Mem) rmdir(r resolved) syscall.Errno {
	p, chain, errno := r.p, r.chain, r.errno
	if errno != 0 {
		return errno
	}
	switch p.kind {
	case lastDot:
		return syscall.EINVAL
	case lastDotDot:
		return syscall.ENOTEMPTY
	case lastRoot:
		return syscall.EBUSY
	}
	dir := chain[len(chain)-1]
	n := dir.entries[p.last]
	switch {
	case n == nil:
		return syscall.ENOENT
	case !dir.can(permW):
		return syscall.EACCES
	case !n.isDir():
		return syscall.ENOTDIR
	case len(n.entries) > 0:
		return syscall.ENOTEMPTY
	}
	m.setEntry(dir, p.last, nil)
	return 0
}

// Mkdir implements FS.
func (m *Mem) Mkdir(name string, perm fs.FileMode) error {
	m.lock()
	defer m.mu.Unlock()
	dir, last, errno := m.newEntry(m.at(name), true)
	if errno != 0 {
		return pathError("mkdir", name, errno)
	}
	m.setEntry(dir, last, newDir(perm))
	return nil
}

// newEntry checks that name can be added, as a directory if isDir, and
// returns the directory to add it to and its name there.
func (m *Mem) newEntry(r resolved, isDir bool) (*memNode, string, syscall.Errno) {
	p, chain, errno := r.p, r.chain, r.errno
	if errno != 0 {
		return nil, "", errno
	}
	if p.kind != lastNormal {
		return nil, "", syscall.EEXIST
	}
	dir := chain[len(chain)-1]
	switch {
	case dir.entries[p.last] != nil:
		return nil, "", syscall.EEXIST
	case p.slash && !isDir:
		return nil, "", syscall.ENOENT // a slash asks for a directory
	case !dir.can(permW):
		return nil, "", syscall.EACCES
	}
	return dir, p.last, 0
}

// Lstat implements FS.
func (m *Mem) Lstat(name string) (fs.FileInfo, error) {
	m.lock()
	defer m.mu.Unlock()
	n, errno := m.lookup(name)
	if errno != 0 {
		return nil, pathError("lstat", name, errno)
	}
	return n.info(filepath.Base(name)), nil
}

// OpenLock implements FS. The lock file is a regular file, created with
// mode perm if it does not exist.
func (m *Mem) OpenLock(name string, perm fs.FileMode) (Lock, error) {
	m.lock()
	defer m.mu.Unlock()
	n, errno := m.openCreate(m.at(name), perm, permR|permW)
	if errno != 0 {
		return nil, pathError("open", name, errno)
	}
	return &memLock{m: m, node: n, name: name}, nil
}

// MapShared implements SharedMemory. The memory belongs to the file, as a
// file's pages do: the first mapping starts from the file's bytes, and
// every mapping of the file shares it; stores into it do not change what
// the File methods read. It is not part of what a crash keeps: in the Mem
// that CrashClone returns, the file maps zeros again, as a power loss may
// leave it.
func (m *Mem) MapShared(name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	m.lock()
	defer m.mu.Unlock()
	return m.mapShared(m.at(name), name, size, perm)
}

// mapShared is MapShared of a resolved name, whose path is name.
func (m *Mem) mapShared(r resolved, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	n, errno := m.openCreate(r, perm, permR|permW)
	if errno != 0 {
		return nil, nil, pathError("open", name, errno)
	}
	words := max((size+7)/8, 1)
	first := n.shared == nil
	if first {
		n.shared = make([]uint64, words)
	}
	if len(n.shared) < words {
		// The memory of the first mapping cannot grow under it.
		return nil, nil, pathError("mmap", name, syscall.EINVAL)
	}
	if len(n.data) < size {
		n.data = append(n.data, make([]byte, size-len(n.data))...)
	}
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&n.shared[0])), size)
	if first {
		copy(mem, n.data) // the memory starts as the file's bytes
	}
	return mem, func() error { return nil }, nil
}

// openCreate does open(2) with O_CREAT|O_NOFOLLOW and the access that an
// existing file must grant with the owner bits want: permW for O_WRONLY,
// permR|permW for O_RDWR.
func (m *Mem) openCreate(r resolved, perm, want fs.FileMode) (*memNode, syscall.Errno) {
	p, chain, errno := r.p, r.chain, r.errno
	switch {
	case errno != 0:
		return nil, errno
	case p.kind != lastNormal || p.slash:
		return nil, syscall.EISDIR
	}
	dir := chain[len(chain)-1]
	n := dir.entries[p.last]
	switch {
	case n == nil && !dir.can(permW):
		return nil, syscall.EACCES
	case n == nil:
		n = newFile(perm)
		m.setEntry(dir, p.last, n)
		return n, 0
	case n.isDir():
		return nil, syscall.EISDIR
	case n.typ == fs.ModeSymlink:
		return nil, syscall.ELOOP
	case !n.can(want):
		return nil, syscall.EACCES
	}
	return n, 0
}

// Truncate implements FS as truncate(2) does, in the order Linux checks,
// without following a symbolic link: a negative size fails with EINVAL.
// The program sees the new size at once; by the crash rules it survives a
// crash only once a File open on the file has been synced.
func (m *Mem) Truncate(name string, size int64) error {
	m.lock()
	defer m.mu.Unlock()
	if errno := m.truncate(m.at(name), size); errno != 0 {
		return pathError("truncate", name, errno)
	}
	return nil
}

// writable returns the node of a resolved name that a write may change in
// place: a regular file, never followed if a symbolic link, writable.
func (m *Mem) writable(r resolved) (*memNode, syscall.Errno) {
	n, errno := m.lookupAt(r)
	switch {
	case errno != 0:
	case n.typ == fs.ModeSymlink:
		errno = syscall.ELOOP
	case n.isDir():
		errno = syscall.EISDIR
	case !n.can(permW):
		errno = syscall.EACCES
	}
	return n, errno
}

// truncate is Truncate of a resolved name.
func (m *Mem) truncate(r resolved, size int64) syscall.Errno {
	n, errno := m.writable(r)
	if errno == 0 && size < 0 {
		errno = syscall.EINVAL
	}
	if errno != 0 {
		return errno
	}
	n.resize(int(size))
	n.modTime = time.Now()
	return 0
}

// Overwrite implements FS: it writes p over the data of regular file name
// from off, failing with EINVAL, and writing nothing, if that would extend
// the file. As with a Write, a crash before the file's next Sync forgets
// it.
func (m *Mem) Overwrite(name string, off int64, p []byte) error {
	m.lock()
	defer m.mu.Unlock()
	if errno := m.overwrite(m.at(name), off, p); errno != 0 {
		return pathError("pwrite", name, errno)
	}
	return nil
}

// overwrite is Overwrite of a resolved name.
func (m *Mem) overwrite(r resolved, off int64, p []byte) syscall.Errno {
	n, errno := m.writable(r)
	if errno == 0 && (off < 0 || off > int64(len(n.data)) || int64(len(p)) > int64(len(n.data))-off) {
		errno = syscall.EINVAL
	}
	if errno != 0 {
		return errno
	}
	copy(n.data[off:], p)
	n.modTime = time.Now()
	return 0
}

// resize cuts regular file n's data to size bytes, or extends it with zeros
// to size.
func (n *memNode) resize(size int) {
	if size <= len(n.data) {
		n.data = n.data[:size]
		return
	}
	n.data = append(n.data, make([]byte, size-len(n.data))...)
}

// SyncAll implements SyncFS: it makes everything in m durable. dir must be
// a directory of m, open.
func (m *Mem) SyncAll(dir File) error {
	f, ok := dir.(*memFile)
	if !ok || f.m != m || !f.node.isDir() {
		return pathError("syncfs", fmt.Sprint(dir), syscall.EBADF)
	}
	m.lock()
	defer m.mu.Unlock()
	if f.closed {
		return pathError("syncfs", f.name, errClosed)
	}
	syncTree(m.root)
	clear(m.renames)
	m.renames = m.renames[:0]
	clear(m.metaLog)
	m.metaLog = m.metaLog[:0]
	return nil
}

// syncTree makes n and everything under it durable.
func syncTree(n *memNode) {
	n.sync()
	for _, child := range n.entries {
		syncTree(child)
	}
}

// sync makes n's current data or entries durable.
func (n *memNode) sync() {
	switch n.typ {
	case 0:
		n.durableData = slices.Clone(n.data)
		n.durableModTime = n.modTime
	case fs.ModeDir:
		n.durable = maps.Clone(n.entries)
	}
}

// Symlink creates name as a symbolic link to target, as os.Symlink does.
// Mem never follows it; it is there to check that the program does not
// either.
func (m *Mem) Symlink(target, name string) error {
	m.lock()
	defer m.mu.Unlock()
	if target == "" {
		return linkError("symlink", target, name, syscall.ENOENT)
	}
	dir, last, errno := m.newEntry(m.at(name), false)
	if errno != 0 {
		return linkError("symlink", target, name, errno)
	}
	m.setEntry(dir, last, &memNode{
		typ:     fs.ModeSymlink,
		perm:    fs.ModePerm,
		modTime: time.Now(),
		target:  target,
	})
	return nil
}

// Chmod sets the permission bits of name to mode&fs.ModePerm. It does not
// follow a symbolic link: on one it fails with ELOOP. The change is durable
// at once.
func (m *Mem) Chmod(name string, mode fs.FileMode) error {
	m.lock()
	defer m.mu.Unlock()
	n, errno := m.lookup(name)
	if errno == 0 && n.typ == fs.ModeSymlink {
		errno = syscall.ELOOP
	}
	if errno != 0 {
		return pathError("chmod", name, errno)
	}
	n.perm = mode & fs.ModePerm
	return nil
}

// CrashClone returns a new, independent Mem holding what would survive a
// power loss now, by the crash rules described on Mem: no open files, no
// locks held, every change made since its last sync gone. m is unchanged.
func (m *Mem) CrashClone() *Mem {
	return m.crashClone(false)
}

// CrashCloneNames returns a new, independent Mem holding what would
// survive a power loss now if the file system had committed every change
// of names so far, synced or not, but no file data that was not synced:
// every directory as the program sees it, each regular file's data as of
// its last Sync. ext4 with delayed allocation can leave such a state: its
// periodic journal commit makes renames durable before the data of the
// files they name is written. After JournalMetadata, every time set by
// SetModTimeIn is committed too. m is unchanged.
func (m *Mem) CrashCloneNames() *Mem {
	return m.crashClone(true)
}

func (m *Mem) crashClone(names bool) *Mem {
	m.lock()
	defer m.mu.Unlock()
	// With ordered metadata, names are committed with the times set
	// before them.
	var times map[*memNode]time.Time
	if names {
		times = make(map[*memNode]time.Time)
		for _, c := range m.metaLog {
			if c.file != nil {
				times[c.file] = c.modTime
			}
		}
	}
	copyOf := func(n *memNode) *memNode {
		c := n.durableCopy()
		if t, ok := times[n]; ok {
			c.modTime, c.durableModTime = t, t
		}
		return c
	}
	clones := map[*memNode]*memNode{m.root: copyOf(m.root)}
	// Walk breadth-first, so that a directory with two durable names keeps
	// the one nearest the root, and cannot end up inside itself.
	for queue := []*memNode{m.root}; len(queue) > 0; queue = queue[1:] {
		dir := queue[0]
		clone := clones[dir]
		entries := dir.durable
		if names {
			entries = dir.entries
		}
		for _, name := range slices.Sorted(maps.Keys(entries)) {
			child := entries[name]
			c, seen := clones[child]
			switch {
			case seen && child.isDir():
				continue
			case !seen:
				c = copyOf(child)
				clones[child] = c
				if child.isDir() {
					queue = append(queue, child)
				}
			}
			clone.entries[name] = c
		}
		clone.durable = maps.Clone(clone.entries)
	}
	return &Mem{root: clones[m.root], journalRenames: m.journalRenames, journalMetadata: m.journalMetadata}
}

// durableCopy returns a new node holding what of n survives a crash, with
// no directory entries yet.
func (n *memNode) durableCopy() *memNode {
	c := &memNode{typ: n.typ, perm: n.perm, modTime: n.modTime, target: n.target}
	switch n.typ {
	case 0:
		c.data = slices.Clone(n.durableData)
		c.durableData = slices.Clone(n.durableData)
		c.modTime = n.durableModTime
		c.durableModTime = n.durableModTime
	case fs.ModeDir:
		c.entries = make(map[string]*memNode)
		c.durable = make(map[string]*memNode)
	}
	return c
}

// closedError is the error of a call on a closed File or Lock.
type closedError struct{}

func (closedError) Error() string { return fs.ErrClosed.Error() }

// Unwrap makes the error match both fs.ErrClosed, as the os package
// reports it, and syscall.EBADF, as the system call does.
func (closedError) Unwrap() []error { return []error{fs.ErrClosed, syscall.EBADF} }

var errClosed error = closedError{}

// memFile is an open file or directory of a Mem. Its fields are guarded by
// m.mu.
type memFile struct {
	m                  *Mem
	node               *memNode
	name               string
	readable, writable bool
	appending          bool // every Write goes to the end of the data
	closed             bool
	off                int

	// Directory listing: the names to list, and how many are done.
	names  []string
	listed bool
	next   int
}

// Name returns the name the file was opened by.
func (f *memFile) Name() string { return f.name }

func (f *memFile) Read(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	switch {
	case f.closed:
		return 0, pathError("read", f.name, errClosed)
	case len(p) == 0:
		return 0, nil
	case !f.readable:
		return 0, pathError("read", f.name, syscall.EBADF)
	case f.node.isDir():
		return 0, pathError("read", f.name, syscall.EISDIR)
	case f.off >= len(f.node.data):
		return 0, io.EOF
	}
	n := copy(p, f.node.data[f.off:])
	f.off += n
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	switch {
	case f.closed:
		return 0, pathError("write", f.name, errClosed)
	case !f.writable:
		return 0, pathError("write", f.name, syscall.EBADF)
	case len(p) == 0:
		return 0, nil
	}
	n := f.node
	if f.appending {
		f.off = len(n.data)
	}
	if f.off > len(n.data) {
		n.resize(f.off) // a hole, left by a Truncate below the offset
	}
	if end := f.off + len(p); end <= len(n.data) {
		copy(n.data[f.off:], p)
	} else {
		n.data = append(n.data[:f.off], p...)
	}
	f.off += len(p)
	n.modTime = time.Now()
	return len(p), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return pathError("close", f.name, errClosed)
	}
	f.closed = true
	f.names = nil
	return nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return pathError("sync", f.name, errClosed)
	}
	if f.node.isDir() {
		f.m.syncRenames(f.node)
	}
	if f.m.journalMetadata {
		f.m.commitMeta(f.node.metaSeq)
	}
	f.node.sync()
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return nil, pathError("stat", f.name, errClosed)
	}
	return f.node.info(filepath.Base(f.name)), nil
}

func (f *memFile) ReadDir(n int) ([]fs.DirEntry, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	switch {
	case f.closed:
		return []fs.DirEntry{}, pathError("readdirent", f.name, errClosed)
	case !f.node.isDir():
		return []fs.DirEntry{}, pathError("readdirent", f.name, syscall.ENOTDIR)
	}
	if !f.listed {
		f.names = slices.Sorted(maps.Keys(f.node.entries))
		f.listed = true
	}
	entries := []fs.DirEntry{}
	for f.next < len(f.names) && (n <= 0 || len(entries) < n) {
		name := f.names[f.next]
		f.next++
		if child := f.node.entries[name]; child != nil {
			entries = append(entries, &memDirEntry{f: f, dir: f.node, name: name, typ: child.typ})
		}
	}
	if n > 0 && len(entries) == 0 {
		return entries, io.EOF
	}
	return entries, nil
}

// memDirEntry is an entry File.ReadDir returned.
type memDirEntry struct {
	f    *memFile
	dir  *memNode
	name string
	typ  fs.FileMode
}

func (d *memDirEntry) Name() string      { return d.name }
func (d *memDirEntry) IsDir() bool       { return d.typ == fs.ModeDir }
func (d *memDirEntry) Type() fs.FileMode { return d.typ }
func (d *memDirEntry) String() string    { return fs.FormatDirEntry(d) }

// Info describes the entry as it is now, as os does: if the name is gone
// from its directory, it fails with ENOENT.
func (d *memDirEntry) Info() (fs.FileInfo, error) {
	d.f.m.mu.Lock()
	defer d.f.m.mu.Unlock()
	n := d.dir.entries[d.name]
	if n == nil {
		return nil, pathError("lstat", d.f.name+string(filepath.Separator)+d.name, syscall.ENOENT)
	}
	return n.info(d.name), nil
}

// memInfo is a fs.FileInfo of Mem.
type memInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
	node    *memNode // the file's identity, for SameFile
}

func (fi *memInfo) Name() string       { return fi.name }
func (fi *memInfo) Size() int64        { return fi.size }
func (fi *memInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *memInfo) ModTime() time.Time { return fi.modTime }
func (fi *memInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *memInfo) Sys() any           { return nil }
func (fi *memInfo) String() string     { return fs.FormatFileInfo(fi) }

// memLock is a Lock on a lock file of a Mem. Its fields are guarded by
// m.mu.
type memLock struct {
	m      *Mem
	node   *memNode
	name   string
	closed bool
}

func (l *memLock) TryLock() (bool, error) {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return false, pathError("flock", l.name, errClosed)
	}
	if l.node.locker != nil && l.node.locker != l {
		return false, nil
	}
	for o := range l.node.sharers {
		if o != l {
			return false, nil
		}
	}
	delete(l.node.sharers, l)
	l.node.locker = l
	return true, nil
}

func (l *memLock) TryLockShared() (bool, error) {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return false, pathError("flock", l.name, errClosed)
	}
	if l.node.locker != nil && l.node.locker != l {
		return false, nil
	}
	l.node.locker = nil
	if l.node.sharers == nil {
		l.node.sharers = make(map[*memLock]bool)
	}
	l.node.sharers[l] = true
	return true, nil
}

func (l *memLock) Unlock() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return pathError("flock", l.name, errClosed)
	}
	l.release()
	return nil
}

func (l *memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return pathError("close", l.name, errClosed)
	}
	l.release()
	l.closed = true
	return nil
}

func (l *memLock) release() {
	if l.node.locker == l {
		l.node.locker = nil
	}
	delete(l.node.sharers, l)
}
