package filesystem

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// DefaultIndexBudget is the memory, in bytes, that a Backend's index of
// records holds at most unless WithIndexBudget says otherwise.
const DefaultIndexBudget = 256 << 20

// indexMaxAge bounds how long a record read from a file stands for it. A
// file rewritten in place, not replaced, changes no counter and no
// directory: it is seen once its record is read again.
const indexMaxAge = time.Minute

// racyStamp is how recent a directory's stamp may be and still miss a
// change made just after it was read, within one tick of the kernel's
// clock.
const racyStamp = 100 * time.Millisecond

// index holds, for each state, the records that the last complete pass
// over the state's directory read (an iteration or a listing by a key), so
// that a pass over messages that have not changed reads no file and, when
// no name changed either, not the directory.
//
// A record stands for its file while the change counter of its state and
// stripe holds the value it had before the file was read: no file of the
// stripe entered or left the directory since. Changes made outside the
// library change no counter; they change the directory's stamp (its
// modification and change times), which each pass reads once.
type index struct {
	budget int64        // the most bytes held; 0 holds nothing
	used   atomic.Int64 // the bytes held, across states
	now    func() time.Time
	states [metastorage.NumStates]atomic.Pointer[snapshot]
}

// snapshot is what one pass over a state's directory found. It never
// changes once published.
//
// Its records hold no pointer for the garbage collector to follow: each
// entry is a fixed-size value, its strings are in pages of bytes that are
// never written again once filled, and names are found by their hash. A
// large index then costs the collector nearly nothing to mark, and the
// strings of a returned record are the page's, not copies.
type snapshot struct {
	stamp  dirStamp
	racy   bool // the stamp was taken too soon after it changed
	counts [numStripes]uint64
	oldest int64 // when its oldest record was read, in Unix nanoseconds
	// complete is set if entries hold every message file the directory
	// held: a later pass may then take the names from entries.
	complete bool
	entries  []slot
	byName   map[uint64]int32 // the hash of a file name to its entry
	pages    [][]byte         // the entries' strings
	// fill is the page being filled, if filling: the strings of a large
	// record get a page of their own, so that no page is more than a
	// quarter empty.
	fill    int
	filling bool
	bytes   int64
}

// slot is a message's record as read from its file, its strings at off in
// page: the ID, the file name, LastError, RetryPolicyName, then each header
// as two 4-byte lengths, key and value.
type slot struct {
	count                             uint64 // the stripe's change counter before the file was read
	read                              int64  // when the file was read, in Unix nanoseconds
	stripe                            int32
	page, off, strLen                 uint32
	idLen, fileLen, errLen, policyLen uint32
	headers                           int32 // -1 for nil Headers
	attempts, maxAttempts, priority   int
	size                              int64
	nextRetry, created, updated       packedTime
	bytes                             int64 // what it costs the budget
}

// entryOverhead is what an entry costs at most beyond its strings: the
// entry, twice for the slack of a growing slice, and its place in a
// snapshot's map, which doubles as it grows.
const entryOverhead = 2*int64(unsafe.Sizeof(slot{})) + 48

// pageSize is the size of a snapshot's pages of strings. A string of a
// returned record keeps its page in memory.
const pageSize = 16 << 10

// nameSeed hashes file names for the snapshots' maps.
var nameSeed = maphash.MakeSeed()

// recordBytes returns what the record md of message id, in file, costs
// the budget: at most what it takes in memory. Its strings count for 4/3
// of their length, since a page is left once the next record's strings do
// not fit, and those are at most a quarter page.
func recordBytes(id, file string, md *metastorage.MessageMetadata) int64 {
	return budgetBytes(stringBytes(id, file, md))
}

// budgetBytes returns what a record whose strings take n bytes costs the
// budget.
func budgetBytes(n int) int64 {
	return entryOverhead + int64(n) + int64(n+2)/3
}

// stringBytes returns the bytes that the strings of md take in a page.
func stringBytes(id, file string, md *metastorage.MessageMetadata) int {
	n := len(id) + len(file) + len(md.LastError) + len(md.RetryPolicyName)
	for k, v := range md.Headers {
		n += 8 + len(k) + len(v)
	}
	return n
}

// packedTime is a time.Time without its pointer to a location: UTC, Local
// or a fixed zone without a name, which is what decoding a record gives.
type packedTime struct {
	sec  int64
	nsec int32
	zone int32 // zoneUTC, zoneLocal, or a fixed zone's offset in seconds
}

const (
	zoneUTC   = 1 << 30 // out of the range of offsets
	zoneLocal = zoneUTC + 1
)

// packTime returns t packed, or false if its location is none of those
// packedTime keeps.
func packTime(t time.Time) (packedTime, bool) {
	p := packedTime{sec: t.Unix(), nsec: int32(t.Nanosecond())}
	switch loc := t.Location(); {
	case loc == time.UTC:
		p.zone = zoneUTC
	case loc == time.Local:
		p.zone = zoneLocal
	default:
		name, off := t.Zone()
		if name != "" || loc.String() != "" || off <= -24*3600 || off >= 24*3600 {
			return p, false
		}
		p.zone = int32(off)
	}
	return p, true
}

func (p packedTime) time() time.Time {
	t := time.Unix(p.sec, int64(p.nsec))
	switch p.zone {
	case zoneUTC:
		return t.UTC()
	case zoneLocal:
		return t
	}
	return t.In(time.FixedZone("", int(p.zone)))
}

func (p packedTime) instant() instant { return instant{p.sec, p.nsec} }

// add appends the record md of message id, in file, read when its
// stripe's counter was count, whose strings take size bytes (stringBytes),
// and reports whether it could: a time in a zone that packedTime does not
// keep, or two names of the same hash, are not kept.
func (n *snapshot) add(id, file string, count uint64, read int64, md *metastorage.MessageMetadata, size int) bool {
	h := maphash.String(nameSeed, file)
	if _, dup := n.byName[h]; dup {
		return false
	}
	e := slot{count: count, read: read, stripe: int32(stripeOf(file)),
		idLen: uint32(len(id)), fileLen: uint32(len(file)), errLen: uint32(len(md.LastError)),
		policyLen: uint32(len(md.RetryPolicyName)), headers: -1,
		attempts: md.Attempts, maxAttempts: md.MaxAttempts, priority: md.Priority, size: md.Size,
		bytes: budgetBytes(size)}
	var ok1, ok2, ok3 bool
	e.nextRetry, ok1 = packTime(md.NextRetry)
	e.created, ok2 = packTime(md.Created)
	e.updated, ok3 = packTime(md.Updated)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	b := n.reserve(&e, size)
	b = append(append(append(append(b, id...), file...), md.LastError...), md.RetryPolicyName...)
	if md.Headers != nil {
		e.headers = int32(len(md.Headers))
		for k, v := range md.Headers {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(append(b, k...), v...)
		}
	}
	n.pages[e.page] = b
	n.insert(h, e)
	return true
}

// addFrom appends the entry i of snapshot s.
func (n *snapshot) addFrom(s *snapshot, i int) bool {
	e := s.entries[i]
	h := maphash.String(nameSeed, s.file(i))
	if _, dup := n.byName[h]; dup {
		return false
	}
	b := n.reserve(&e, int(e.strLen))
	n.pages[e.page] = append(b, s.strings(i)...)
	n.insert(h, e)
	return true
}

// reserve sets e's page and offset to where size bytes of strings go,
// and returns that page.
func (n *snapshot) reserve(e *slot, size int) []byte {
	i := n.fill
	switch {
	case size > pageSize/4:
		i = len(n.pages)
		n.pages = append(n.pages, make([]byte, 0, size))
	case !n.filling || cap(n.pages[i])-len(n.pages[i]) < size:
		i = len(n.pages)
		n.pages = append(n.pages, make([]byte, 0, pageSize))
		n.fill, n.filling = i, true
	}
	e.page, e.off, e.strLen = uint32(i), uint32(len(n.pages[i])), uint32(size)
	return n.pages[i]
}

func (n *snapshot) insert(h uint64, e slot) {
	if n.byName == nil {
		n.byName = make(map[uint64]int32, 64)
	}
	n.byName[h] = int32(len(n.entries))
	n.entries = append(n.entries, e)
	n.bytes += e.bytes
	n.oldest = min(n.oldest, e.read)
}

// strings returns the bytes of entry i's strings.
func (s *snapshot) strings(i int) []byte {
	e := &s.entries[i]
	return s.pages[e.page][e.off : e.off+e.strLen]
}

// str returns the n bytes of b at off as a string, without a copy: b is
// never written there again.
func str(b []byte, off, n uint32) string {
	if n == 0 {
		return ""
	}
	s := b[off : off+n]
	return unsafe.String(unsafe.SliceData(s), n)
}

// id returns the ID of entry i.
func (s *snapshot) id(i int) string {
	return str(s.strings(i), 0, s.entries[i].idLen)
}

// file returns the file name of entry i.
func (s *snapshot) file(i int) string {
	e := &s.entries[i]
	return str(s.strings(i), e.idLen, e.fileLen)
}

// find returns the entry of file, if s holds one.
func (s *snapshot) find(file string) (int, bool) {
	i, ok := s.byName[maphash.String(nameSeed, file)]
	if !ok || s.file(int(i)) != file {
		return 0, false
	}
	return int(i), true
}

// keys returns the list keys of entry i.
func (s *snapshot) keys(i int) listKeys {
	e := &s.entries[i]
	return listKeys{created: e.created.instant(), updated: e.updated.instant(),
		priority: e.priority, attempts: e.attempts}
}

// record returns the message of entry i in state st, for the caller to
// keep and change: its Headers are its own. Its ID is a copy, since callers
// keep IDs and a string of the page keeps the whole page; its other strings
// are the page's.
func (s *snapshot) record(i int, st metastorage.QueueState) metastorage.MessageMetadata {
	e := &s.entries[i]
	b := s.strings(i)
	at := e.idLen + e.fileLen
	md := metastorage.MessageMetadata{
		ID: strings.Clone(str(b, 0, e.idLen)), State: st, Attempts: e.attempts, MaxAttempts: e.maxAttempts,
		NextRetry: e.nextRetry.time(), Created: e.created.time(), Updated: e.updated.time(),
		LastError: str(b, at, e.errLen), Size: e.size, Priority: e.priority,
		RetryPolicyName: str(b, at+e.errLen, e.policyLen),
	}
	if e.headers < 0 {
		return md
	}
	md.Headers = make(map[string]string, e.headers)
	at += e.errLen + e.policyLen
	for range e.headers {
		kl := binary.LittleEndian.Uint32(b[at:])
		vl := binary.LittleEndian.Uint32(b[at+4:])
		at += 8
		md.Headers[str(b, at, kl)] = str(b, at+kl, vl)
		at += kl + vl
	}
	return md
}

// current reports whether entry i still stands for its file in state st.
func (s *snapshot) current(i int, c *changes, st metastorage.QueueState) bool {
	e := &s.entries[i]
	return c.Unchanged(st, int(e.stripe), e.count)
}

// dirStamp is what a directory's metadata tells of its entries: it changes
// when a name is added, removed or renamed.
type dirStamp struct {
	mtime, ctime int64
	size         int64
	ino          uint64
}

// readStamp returns the stamp of the open directory d.
func readStamp(d vfs.File) (dirStamp, error) {
	fi, err := d.Stat()
	if err != nil {
		return dirStamp{}, err
	}
	st := dirStamp{mtime: fi.ModTime().UnixNano(), size: fi.Size()}
	st.ctime, st.ino = statCtimeIno(fi)
	return st, nil
}

// racy reports whether a change made just after st was read, at now,
// might not have changed it.
func (st dirStamp) racy(now time.Time) bool {
	window := racyStamp
	if st.mtime%int64(time.Second) == 0 {
		window = 2 * time.Second // a file system that keeps whole seconds
	}
	return now.UnixNano()-max(st.mtime, st.ctime) < int64(window)
}

// pass is one pass over a state's directory that uses the index and
// renews it. Its methods may be called from several goroutines.
type pass struct {
	x     *index
	c     *changes
	s     metastorage.QueueState
	now   time.Time
	prev  *snapshot // nil if none
	fresh bool      // prev stands for the directory: no name changed
	// reuse is false if the directory changed outside the library since
	// prev: no record of prev is used.
	reuse bool

	mu   sync.Mutex
	next *snapshot // the snapshot being renewed; nil if fresh or abandoned
}

// begin starts a pass over state s's directory, open as d. The pass is
// fresh if the index's snapshot stands for the directory: its names are the
// directory's, and each record stands for its file while its counter
// holds. It returns nil if the index holds nothing.
func (x *index) begin(c *changes, s metastorage.QueueState, d vfs.File) *pass {
	if x == nil || x.budget <= 0 || c == nil {
		return nil
	}
	p := &pass{x: x, c: c, s: s, now: x.now(), prev: x.states[s].Load()}
	var counts [numStripes]uint64
	usable := true
	for i := range counts {
		var ok bool
		counts[i], ok = c.snapshot(s, i)
		usable = usable && ok
	}
	stamp, err := readStamp(d)
	if prev := p.prev; prev != nil && err == nil {
		same := usable && counts == prev.counts
		p.fresh = prev.complete && !prev.racy && same && stamp == prev.stamp &&
			p.now.UnixNano()-prev.oldest < int64(indexMaxAge)
		// A stamp that changed while no counter did: a change outside
		// the library, which counters cannot tell apart.
		p.reuse = stamp == prev.stamp || !same
	}
	if !p.fresh {
		p.next = &snapshot{stamp: stamp, racy: stamp.racy(p.now), counts: counts,
			complete: err == nil, oldest: p.now.UnixNano()}
	}
	return p
}

// lookup returns the entry of prev that holds file's record, if it still
// stands for the file.
func (p *pass) lookup(file string) (int, bool) {
	if p == nil || !p.reuse {
		return 0, false
	}
	i, ok := p.prev.find(file)
	if !ok || !p.prev.current(i, p.c, p.s) || p.now.UnixNano()-p.prev.entries[i].read >= int64(indexMaxAge) {
		return 0, false
	}
	return i, true
}

// keepPrev adds prev's entry i to the snapshot the pass renews, if the
// budget has room.
func (p *pass) keepPrev(i int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.room(p.prev.entries[i].bytes) && !p.next.addFrom(p.prev, i) {
		p.next.complete = false
	}
}

// keep adds the record md of message id, read from file when its stripe's
// counter was count, to the snapshot the pass renews, if the budget has
// room.
func (p *pass) keep(id, file string, count uint64, md *metastorage.MessageMetadata) {
	if p == nil {
		return
	}
	size := stringBytes(id, file, md)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.room(budgetBytes(size)) && !p.next.add(id, file, count, p.now.UnixNano(), md, size) {
		p.next.complete = false
	}
}

// room reports whether the snapshot being renewed can take n more bytes,
// and marks it incomplete if not. p.mu is held.
func (p *pass) room(n int64) bool {
	next := p.next
	if next == nil {
		return false
	}
	var prevBytes int64
	if p.prev != nil {
		prevBytes = p.prev.bytes
	}
	if p.x.used.Load()-prevBytes+next.bytes+n > p.x.budget {
		next.complete = false
		return false
	}
	return true
}

// miss records that a message file of the directory has no record in the
// snapshot: it was not valid metadata, could not be read, or changed.
func (p *pass) miss() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next != nil {
		p.next.complete = false
	}
}

// abandon ends a pass that did not see the whole directory.
func (p *pass) abandon() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = nil
}

// finish ends a pass that saw the whole directory and publishes what it
// found.
func (p *pass) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	n := p.next
	p.next = nil
	p.mu.Unlock()
	if n == nil {
		return
	}
	old := p.x.states[p.s].Swap(n)
	var oldBytes int64
	if old != nil {
		oldBytes = old.bytes
	}
	p.x.used.Add(n.bytes - oldBytes)
}

// drop forgets the records of state s.
func (x *index) drop(s metastorage.QueueState) {
	if old := x.states[s].Swap(nil); old != nil {
		x.used.Add(-old.bytes)
	}
}

// listKeys are the fields of a record that ListMessages sorts and filters
// by.
type listKeys struct {
	created, updated   instant
	priority, attempts int
}

func keysOf(md *metastorage.MessageMetadata) listKeys {
	return listKeys{
		created: instantOf(md.Created), updated: instantOf(md.Updated),
		priority: md.Priority, attempts: md.Attempts,
	}
}

// instant is a time.Time reduced to what ordering needs, without the
// pointer to its location.
type instant struct {
	sec  int64
	nsec int32
}

func instantOf(t time.Time) instant { return instant{t.Unix(), int32(t.Nanosecond())} }

func (a instant) compare(b instant) int {
	if c := cmp.Compare(a.sec, b.sec); c != 0 {
		return c
	}
	return cmp.Compare(a.nsec, b.nsec)
}
