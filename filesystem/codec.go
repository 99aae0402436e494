package filesystem

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// MaxRecordBytes is the largest record, as stored (its JSON), that a
// Backend writes and reads. A record whose strings total at most
// metastorage.StringBytesAlwaysStored always fits; a larger one is refused
// with an error wrapping metastorage.ErrTooLarge.
const MaxRecordBytes = codec.MaxBytes

var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readRecord opens path without following a symbolic link and decodes it
// as a file of state s's directory (see recordIn), or, for s nowhere (a
// temp file), as the record its fields hold. A missing file gives an error
// for which isNotExist is true.
func readRecord(fsys vfs.FS, path string, s metastorage.QueueState) (metastorage.MessageMetadata, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	f, err := fsys.Open(path)
	if err != nil {
		return metastorage.MessageMetadata{}, err
	}
	md, _, _, err := readOpenData(f, path, s, bp)
	return md, err
}

// readRecordIn is readRecord of the file named file in the open directory
// dir of state s, whose path is dirPath, reading into *bp, which it leaves
// grown for the next call. It also returns the bytes read, which stay in
// *bp until its next use, and the file's State field (see decodeIn).
func readRecordIn(fsys vfs.FS, dir vfs.File, dirPath string, s metastorage.QueueState, file string, bp *[]byte) (md metastorage.MessageMetadata, data []byte, written metastorage.QueueState, err error) {
	f, err := fsys.OpenIn(dir, file)
	if err != nil {
		return metastorage.MessageMetadata{}, nil, nowhere, err
	}
	md, data, written, err = readOpenData(f, "", s, bp)
	if errors.Is(err, codec.ErrCorrupt) {
		err = fmt.Errorf("%s%c%s: %w", dirPath, filepath.Separator, file, err)
	}
	return md, data, written, err
}

// readOpenData reads and decodes the open file f, whose path is path, as
// a file of state s's directory (see readRecord), and closes it. It also
// returns the bytes read, which stay in *bp until its next use, and the
// file's State field. An empty path leaves codec.ErrCorrupt errors without
// one.
func readOpenData(f vfs.File, path string, s metastorage.QueueState, bp *[]byte) (metastorage.MessageMetadata, []byte, metastorage.QueueState, error) {
	fi, statErr := f.Stat()
	data, err := codec.ReadFile(f, fi, bp)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return metastorage.MessageMetadata{}, nil, nowhere, err
	}
	if statErr != nil {
		fi = nil
	}
	md, written, err := decodeIn(data, fi, s)
	if errors.Is(err, errNoModTime) {
		err = fmt.Errorf("%w: %w", err, statErr)
	}
	if err != nil && path != "" {
		return md, data, written, fmt.Errorf("%s: %w", path, err)
	}
	return md, data, written, err
}

// errNoModTime is the error of a file whose record needs its
// modification time (see recordIn), when it could not be had.
var errNoModTime = errors.New("cannot read the file's modification time, which holds its Updated")

// decodeIn decodes data, read from a file that fi describes (nil if its
// description could not be had), as a message file of state s's directory
// by the format's rule (recordIn); for s nowhere, as the record its fields
// hold. Every reader of a message file decodes it here. It also returns
// the file's State field: the state the record was written in.
func decodeIn(data []byte, fi fs.FileInfo, s metastorage.QueueState) (metastorage.MessageMetadata, metastorage.QueueState, error) {
	md, err := codec.Decode(data)
	if err != nil {
		return md, nowhere, err
	}
	written := md.State
	if s == nowhere {
		return md, written, nil
	}
	if md.State != s && fi == nil {
		return metastorage.MessageMetadata{}, written, errNoModTime
	}
	recordIn(&md, fi, s)
	return md, written, nil
}

// recordIn makes md, decoded from a message file of state s's directory
// that fi describes, the message's record by the format's rule. A
// message's state is its directory. A state change that is one rename
// (see Backend.MoveToState) leaves the file's State and Updated fields as
// they were and sets the file's modification time to the change's
// Updated; a record written whole names its directory's state. So the
// record's Updated is its Updated field where its State field names the
// directory's state, and otherwise the file's modification time.
func recordIn(md *metastorage.MessageMetadata, fi fs.FileInfo, s metastorage.QueueState) {
	if md.State != s {
		md.Updated = fi.ModTime()
		md.State = s
	}
}

// isUnreadable reports whether err says that a message file cannot be
// read for lack of permission: it belongs to another user, or its mode
// denies reading. Such a file is not damaged, and a scan or a listing
// skips it rather than ending.
func isUnreadable(err error) bool { return errors.Is(err, fs.ErrPermission) }

// pathErrReason returns what err says went wrong, without the operation
// and path that a *fs.PathError adds.
func pathErrReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
