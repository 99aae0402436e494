package filesystem

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"syscall"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
)

// readNames calls fn with the message file names in the state directory
// dir of fsys, batch at a time, in directory order. Entries that are not
// message files (temp files, foreign names, subdirectories) are left out.
func readNames(ctx context.Context, fsys vfs.FS, dir string, batch int, fn func(files []string) error) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return readNamesIn(ctx, d, batch, fn)
}

// readNamesIn is readNames of the open state directory d.
func readNamesIn(ctx context.Context, d vfs.File, batch int, fn func(files []string) error) error {
	files := make([]string, 0, batch)
	return readEntries(ctx, d, batch, func(ents []fs.DirEntry) error {
		files = files[:0]
		for _, e := range ents {
			if e.Type().IsRegular() {
				if _, ok := name.Decode(e.Name()); ok {
					files = append(files, e.Name())
				}
			}
		}
		if len(files) == 0 {
			return nil
		}
		return fn(files)
	})
}

// readDir calls fn with the entries of the directory dir of fsys, batch at
// a time, in directory order, reading the directory once.
func readDir(ctx context.Context, fsys vfs.FS, dir string, batch int, fn func([]fs.DirEntry) error) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return readEntries(ctx, d, batch, fn)
}

// readEntries calls fn with the entries of the open directory d, batch at
// a time, in directory order, reading it once from where it stands.
func readEntries(ctx context.Context, d vfs.File, batch int, fn func([]fs.DirEntry) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := d.ReadDir(batch)
		if len(ents) > 0 {
			if ferr := fn(ents); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// isNotExist reports whether err means the file is not there.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
