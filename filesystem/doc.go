// Package filesystem is a metastorage.Backend that keeps each message's
// metadata as one JSON file in the directory of its queue state. Users
// import it as metafs:
//
//	import metafs "github.com/spoolmeta/spoolmeta/filesystem"
//
// The module's docs/DESIGN.md specifies the on-disk format, the crash
// windows and the order in which locks are taken.
//
// # Layout
//
//	<dir>/incoming/<id>.json   one file per message, in its state's directory
//	<dir>/active/ deferred/ hold/ bounce/ archived/
//	<dir>/corrupt/<state>/     damaged files that recovery set aside
//	<dir>/.locks/stripe-NN     lock files (a fixed set of stripes)
//	<dir>/.locks/changes       change counters and message counts, mapped by every writer
//	<dir>/.locks/opening       held by a writer while it joins the others
//	<dir>/.locks/backends      held by every open writer; by one alone exclusively
//	<dir>/.journal             Hybrid mode's write-ahead journal
//
// The directory a file lies in is the truth about the message's state. A
// file is written to a temp file (".tmp.<stripe>-<random>") in the
// directory it will be renamed into, and renamed over the message's name,
// so no file under a message's name is ever half-written. A change of
// state is a rename between directories that never replaces a file, so a
// message is never in two states. Writers of one message exclude each
// other with a lock stripe: a mutex for the goroutines of one Backend and
// flock(2) on a file under .locks for other Backends and processes;
// readers take no lock. Around each
// rename or removal of a message file, its writer moves a counter of the
// file's state and stripe in .locks/changes, a file that every writing
// process maps into memory, so that an iterator knows without a system
// call that a record it read ahead is still current, a listing that
// the sort keys it kept from an earlier one still are, and a writer that
// a directory it listed lately still lacks a message it is about to
// store.
//
// A writing Backend opens the directory, its state directories and .locks
// once, and makes every change (of message, temp and lock files, the
// journal, the counters and corrupt/) relative to those descriptors,
// never following a symbolic link. A change, once made and before it is
// acknowledged, checks that the path of its state's directory still
// leads to the directory opened, which also covers the metadata
// directory; the recovery scan checks .locks too. If one was replaced, by
// a symbolic link or another directory, the change is undone and fails
// with an error wrapping ErrDirReplaced that names it, and so does every
// later write until the Backend is reopened.
//
// # Counts
//
// The same memory holds the number of messages of each state and stripe,
// which a writer changes while the change counter is odd. So GetStateCount
// is exact for every change made through a writable Backend by any process
// on the directory. A writer killed mid-change leaves the counter odd; the
// next holder of the stripe's lock counts the stripe's files again. The
// memory is not durable, so the first writable Backend to open the
// directory while no other has it open counts the state directories, in
// the background; GetStateCount waits for that count, and other Backends
// wait for it in NewBackend. A read-only Backend, or one on a file system
// without shared memory, keeps a count of its own (see GetStateCount).
//
// # Durability modes
//
// Factory.WithMode picks the mode; the last mode option set wins.
//
// Standard (the default): before a call returns nil, the new file's data has
// been fsynced before its rename, and every directory whose entries changed
// has been fsynced after it: the change survives a power loss. A move out
// of the state a message's file was written in is one rename of the file,
// whose modification time, set to the new Updated and fsynced before the
// rename, is the record's Updated while the file lies where its State
// field does not say (see docs/DESIGN.md); on a file system that journals
// metadata in order (XFS, or ext3 or ext4 with a journal, found on Linux
// when the directory is opened), the fsync of the new directory after the
// rename commits the time and both names instead. Performance mode moves
// so too, without the fsyncs, and Hybrid mode after the move's whole
// record is durable in the journal.
//
// Performance (WithMode(Performance), or WithDisableSync): no call fsyncs. Writes stay atomic, so a
// process crash loses nothing. A Backend syncs the file system (syncfs(2);
// on macOS, each file it changed) every 5 seconds while its calls change files, and at Close; a power loss
// or kernel crash may lose the calls since then, and bring back an older
// version of a message, but each message present at a sync is found in
// exactly one state. Until that sync, the file holding a message's previous
// record is kept (unless the Backend wrote it and no sync of a Backend on
// the directory began or ended since), since a file system may make a
// rename durable before the renamed file's data; recovery puts it back in
// place of an empty message file. Use it where the queue can be rebuilt,
// or where the speed is worth that risk.
//
// Hybrid (WithMode(Hybrid), or WithBatchSync): as durable as Standard, by a write-ahead journal.
// Before a call returns nil, the message as the call leaves it (its whole
// new record, or its deletion, checksummed) has been appended to the
// directory's journal and the journal fsynced; one fsync serves every call
// waiting for it (group commit). The message files are then changed as in
// Performance mode. A checkpoint makes every file change durable at once
// (syncfs(2)) and only then empties the journal; it runs when a Backend has
// appended 8 MiB to the journal, and at Close. Opening a directory whose
// journal is not empty replays it before the first call: each message ends
// as its last record says. A call that fails after its record was appended
// voids the record in place before it returns, so no replay applies it.
// Once a directory has a journal, Backends of every mode write through it,
// since a change it does not order could be undone by the replay of an
// older record; a Standard-mode Backend is then as durable as before, and
// skips its own fsyncs.
//
// # Crash recovery
//
// NewBackend starts a recovery scan in the background and returns; Close
// waits for it; RecoverFromCrash runs it synchronously. It removes orphaned
// temp files (never one whose writer is alive), puts the newest complete
// record a temp file holds in place of a message file that is not valid
// metadata, removes the previous records that Performance mode keeps only
// after a syncfs, completes a change of content and state that a crash
// interrupted between its two renames, keeps the newest copy of a message
// found in two states (on a tie, the one in hold; see Backend.Check), and
// moves files that are not valid metadata to corrupt/. A State field that
// disagrees with its directory is what a move leaves, and is left. Every action is logged. A
// message file that cannot be read (permission denied) is not damaged as
// far as the scan knows: it is reported, logged and left where it is, and
// the scan goes on.
//
// # Platforms
//
// The backend opens on Linux and macOS, with the same guarantees in every
// mode. On macOS it renames with renameatx_np(2) (RENAME_EXCL, RENAME_SWAP)
// and syncs with fcntl(F_FULLFSYNC), since fsync(2) there leaves data in
// the drive's cache; having no syncfs(2), Performance mode's periodic sync,
// Hybrid's checkpoint and the recovery sync each file and directory changed
// since the last sync. On a file system without RENAME_SWAP (HFS+), open
// refuses Performance mode. Elsewhere, Windows included, NewBackend returns
// an error matching errors.ErrUnsupported that says why and what to use
// instead.
package filesystem
