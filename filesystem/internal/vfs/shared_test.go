package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// sharedFS is a file system with shared memory, rooted at a directory.
type sharedFS interface {
	FS
	SharedMemory
}

// sharedFSes returns the implementations of SharedMemory to test, each with
// a directory to work in.
func sharedFSes(t *testing.T) map[string]func(t *testing.T) (sharedFS, string) {
	fss := map[string]func(t *testing.T) (sharedFS, string){
		"mem": func(t *testing.T) (sharedFS, string) {
			m := NewMem()
			if err := m.Mkdir("/d", 0o755); err != nil {
				t.Fatal(err)
			}
			return m, "/d"
		},
		"os": func(t *testing.T) (sharedFS, string) {
			spooltest.NeedDisk(t)
			return OS.(sharedFS), t.TempDir()
		},
	}
	return fss
}

// TestMapShared shows that two mappings of one file share their memory,
// and that what is stored stays while the file does.
func TestMapShared(t *testing.T) {
	for name, newFS := range sharedFSes(t) {
		t.Run(name, func(t *testing.T) {
			fsys, dir := newFS(t)
			path := filepath.Join(dir, "shm")
			m1, unmap1, err := fsys.MapShared(path, 4096, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			m2, unmap2, err := fsys.MapShared(path, 4096, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if len(m1) != 4096 || len(m2) != 4096 {
				t.Fatalf("mapped %d and %d bytes, want 4096", len(m1), len(m2))
			}
			if uintptr(unsafe.Pointer(&m1[0]))%8 != 0 {
				t.Errorf("memory at %p is not aligned to 8 bytes", &m1[0])
			}
			w1 := (*atomic.Uint64)(unsafe.Pointer(&m1[8]))
			w2 := (*atomic.Uint64)(unsafe.Pointer(&m2[8]))
			w1.Add(41)
			w2.Add(1)
			if got := w1.Load(); got != 42 {
				t.Errorf("first mapping reads %d after both added, want 42", got)
			}
			fi, err := fsys.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Size() != 4096 {
				t.Errorf("file: mode %v, size %d; want a regular file of 4096 bytes", fi.Mode(), fi.Size())
			}
			if err := errors.Join(unmap1(), unmap2()); err != nil {
				t.Fatal(err)
			}
			m3, unmap3, err := fsys.MapShared(path, 4096, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer unmap3()
			if got := (*atomic.Uint64)(unsafe.Pointer(&m3[8])).Load(); got != 42 {
				t.Errorf("a new mapping reads %d, want the 42 stored before", got)
			}
		})
	}
}

// TestMapSharedRefuses shows that MapShared follows no symbolic link and
// maps nothing but a regular file.
func TestMapSharedRefuses(t *testing.T) {
	for name, newFS := range sharedFSes(t) {
		t.Run(name, func(t *testing.T) {
			fsys, dir := newFS(t)
			sub := filepath.Join(dir, "sub")
			if err := fsys.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, "link")
			switch m := fsys.(type) {
			case *Mem:
				if err := m.Symlink("shm", link); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.Symlink("shm", link); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range []struct {
				path string
				want error
			}{
				{sub, syscall.EISDIR},
				{link, syscall.ELOOP},
			} {
				_, _, err := fsys.MapShared(tc.path, 64, 0o600)
				if !errors.Is(err, tc.want) {
					t.Errorf("MapShared(%s) = %v, want %v", tc.path, err, tc.want)
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != tc.path {
					t.Errorf("MapShared(%s): error %v does not name the path", tc.path, err)
				}
			}
			if _, err := fsys.Lstat(filepath.Join(dir, "shm")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the link's target was created: %v", err)
			}
		})
	}
}

// TestMapSharedExtends shows that a shorter file keeps its bytes and is
// extended with zeros to the size mapped.
func TestMapSharedExtends(t *testing.T) {
	for name, newFS := range sharedFSes(t) {
		t.Run(name, func(t *testing.T) {
			fsys, dir := newFS(t)
			path := filepath.Join(dir, "shm")
			f, err := fsys.Create(path, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			mem, unmap, err := fsys.MapShared(path, 64, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer unmap()
			if want := append([]byte("abc"), make([]byte, 61)...); string(mem) != string(want) {
				t.Errorf("memory %q, want %q", mem, want)
			}
			fi, err := fsys.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != 64 {
				t.Errorf("file of %d bytes after mapping 64, want 64", fi.Size())
			}
		})
	}
}
