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

// readRecord opens path without following a symbolic link and decodes it.
// A missing file gives an error for which isNotExist is true.
func readRecord(fsys vfs.FS, path string) (metastorage.MessageMetadata, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	return readRecordBuf(fsys, path, bp)
}

// readRecordBuf is readRecord reading into *bp, which it leaves grown for
// the next call: a caller that reads many records reuses one buffer.
func readRecordBuf(fsys vfs.FS, path string, bp *[]byte) (metastorage.MessageMetadata, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return metastorage.MessageMetadata{}, err
	}
	return readOpen(f, path, bp)
}

// readRecordIn is readRecordBuf of the file named file in the open
// directory dir, whose path is dirPath. It also returns the bytes read,
// which stay in *bp until its next use.
func readRecordIn(fsys vfs.FS, dir vfs.File, dirPath, file string, bp *[]byte) (metastorage.MessageMetadata, []byte, error) {
	f, err := fsys.OpenIn(dir, file)
	if err != nil {
		return metastorage.MessageMetadata{}, nil, err
	}
	md, data, err := readOpenData(f, "", bp)
	if errors.Is(err, codec.ErrCorrupt) {
		err = fmt.Errorf("%s%c%s: %w", dirPath, filepath.Separator, file, err)
	}
	return md, data, err
}

// readOpen reads and decodes the open file f, whose path is path, and
// closes it. An empty path leaves codec.ErrCorrupt errors without one.
func readOpen(f vfs.File, path string, bp *[]byte) (metastorage.MessageMetadata, error) {
	md, _, err := readOpenData(f, path, bp)
	return md, err
}

// readOpenData is readOpen, also returning the bytes read, which stay in
// *bp until its next use.
func readOpenData(f vfs.File, path string, bp *[]byte) (metastorage.MessageMetadata, []byte, error) {
	fi, _ := f.Stat()
	data, err := codec.ReadFile(f, fi, bp)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return metastorage.MessageMetadata{}, nil, err
	}
	md, err := codec.Decode(data)
	if err != nil && path != "" {
		return md, data, fmt.Errorf("%s: %w", path, err)
	}
	return md, data, err
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
