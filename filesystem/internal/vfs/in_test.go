package vfs

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// inOps are the directory-relative operations of FS and SharedMemory, each
// run on name in dir; the file or link name must already exist for those
// that want it.
var inOps = []struct {
	op string
	do func(fsys FS, dir File, name string) error
	// wantErr are the errors an operation on a symbolic link name may
	// give; none if it acts on the link itself.
	wantErr []error
}{
	{"CreateIn", func(fsys FS, dir File, name string) error {
		return closeFile(fsys.CreateIn(dir, name, 0o644))
	}, []error{fs.ErrExist}},
	{"OpenAppendIn", func(fsys FS, dir File, name string) error {
		return closeFile(fsys.OpenAppendIn(dir, name, 0o644))
	}, []error{syscall.ELOOP}},
	{"OpenDirIn", func(fsys FS, dir File, name string) error {
		return closeFile(fsys.OpenDirIn(dir, name))
	}, []error{syscall.ELOOP, syscall.ENOTDIR}},
	{"TruncateIn", func(fsys FS, dir File, name string) error {
		return fsys.TruncateIn(dir, name, 0)
	}, []error{syscall.ELOOP}},
	{"OverwriteIn", func(fsys FS, dir File, name string) error {
		return fsys.OverwriteIn(dir, name, 0, nil)
	}, []error{syscall.ELOOP}},
	{"MkdirIn", func(fsys FS, dir File, name string) error {
		return fsys.MkdirIn(dir, name, 0o755)
	}, []error{fs.ErrExist}},
	{"OpenLockIn", func(fsys FS, dir File, name string) error {
		l, err := fsys.OpenLockIn(dir, name, 0o644)
		if err != nil {
			return err
		}
		return l.Close()
	}, []error{syscall.ELOOP}},
	{"MapSharedIn", func(fsys FS, dir File, name string) error {
		_, unmap, err := fsys.(SharedMemory).MapSharedIn(dir, name, 8, 0o644)
		if err != nil {
			return err
		}
		return unmap()
	}, []error{syscall.ELOOP}},
	// These act on the link itself, never on its target.
	{"RemoveIn", func(fsys FS, dir File, name string) error {
		return fsys.RemoveIn(dir, name)
	}, nil},
	{"RenameIn", func(fsys FS, dir File, name string) error {
		return fsys.RenameIn(dir, name, dir, "renamed", RenameReplace)
	}, nil},
	{"RenameIn/NoReplace", func(fsys FS, dir File, name string) error {
		return fsys.RenameIn(dir, name, dir, "renamed", RenameNoReplace)
	}, nil},
	{"RenameIn/over", func(fsys FS, dir File, name string) error {
		if err := closeFile(fsys.CreateIn(dir, "other", 0o644)); err != nil {
			return err
		}
		return fsys.RenameIn(dir, "other", dir, name, RenameReplace)
	}, nil},
}

func closeFile(f File, err error) error {
	if err != nil {
		return err
	}
	return f.Close()
}

// TestInOpsRefuseSymlinks checks that each directory-relative operation,
// on a name that is a symbolic link to a directory or file outside, either
// fails as the operation on a link must or acts on the link itself, and
// that nothing appears or changes outside.
func TestInOpsRefuseSymlinks(t *testing.T) {
	for _, op := range inOps {
		for sysName, sys := range openInSystems(t) {
			t.Run(op.op+"/"+sysName, func(t *testing.T) {
				if sys.fsys == OS {
					spooltest.NeedDisk(t)
				}
				fsys, root := sys.fsys, sys.root+"/"+strings.ReplaceAll(op.op, "/", "-")
				mustMkdir(t, fsys, root)
				mustMkdir(t, fsys, root+"/d")
				mustMkdir(t, fsys, root+"/outside")
				writeFile(t, fsys, root+"/outside/target", "kept")
				if err := sys.symlink("../outside/target", root+"/d/link"); err != nil {
					t.Fatal(err)
				}
				dir, err := fsys.OpenDir(root + "/d")
				if err != nil {
					t.Fatal(err)
				}
				defer dir.Close()
				err = op.do(fsys, dir, "link")
				if op.wantErr == nil && err != nil {
					t.Errorf("%s of a link: %v, want it done on the link", op.op, err)
				}
				if op.wantErr != nil {
					matched := false
					for _, want := range op.wantErr {
						matched = matched || errors.Is(err, want)
					}
					if !matched {
						t.Errorf("%s of a link: %v, want one of %v", op.op, err, op.wantErr)
					}
					if link := inPath(root+"/d", "link"); err != nil && !strings.Contains(err.Error(), link) {
						t.Errorf("%s error %q does not name %s", op.op, err, link)
					}
				}
				checkOutside(t, fsys, root+"/outside", "target")
				if got, err := readFile(fsys, root+"/outside/target"); got != "kept" {
					t.Errorf("after %s, the link's target holds %q (%v), want %q", op.op, got, err, "kept")
				}
			})
		}
	}
}

// TestInOpsIgnoreReplacedDir checks that each directory-relative operation
// works in the directory that was opened after it has been renamed and a
// symbolic link to another directory has taken its path.
func TestInOpsIgnoreReplacedDir(t *testing.T) {
	for _, op := range inOps {
		for sysName, sys := range openInSystems(t) {
			t.Run(op.op+"/"+sysName, func(t *testing.T) {
				if sys.fsys == OS {
					spooltest.NeedDisk(t)
				}
				fsys, root := sys.fsys, sys.root+"/"+strings.ReplaceAll(op.op, "/", "-")
				mustMkdir(t, fsys, root)
				mustMkdir(t, fsys, root+"/d")
				mustMkdir(t, fsys, root+"/outside")
				dir, err := fsys.OpenDir(root + "/d")
				if err != nil {
					t.Fatal(err)
				}
				defer dir.Close()
				name := "f"
				switch op.op {
				case "CreateIn", "OpenAppendIn", "MkdirIn", "OpenLockIn", "MapSharedIn":
					// They create name.
				case "OpenDirIn":
					mustMkdir(t, fsys, root+"/d/f")
				default:
					writeFile(t, fsys, root+"/d/f", "data")
				}
				if err := fsys.Rename(root+"/d", root+"/real"); err != nil {
					t.Fatal(err)
				}
				if err := sys.symlink("outside", root+"/d"); err != nil {
					t.Fatal(err)
				}
				if err := op.do(fsys, dir, name); err != nil {
					t.Fatalf("%s in the replaced directory: %v", op.op, err)
				}
				checkOutside(t, fsys, root+"/outside")
				if _, err := fsys.Lstat(root + "/real/renamed"); strings.HasPrefix(op.op, "RenameIn") && op.op != "RenameIn/over" && err != nil {
					t.Errorf("%s: the renamed file is not in the opened directory: %v", op.op, err)
				}
			})
		}
	}
}

// checkOutside fails the test if dir holds anything but the names want.
func checkOutside(t *testing.T, fsys FS, dir string, want ...string) {
	t.Helper()
	d, err := fsys.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}
