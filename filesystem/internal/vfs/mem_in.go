package vfs

import (
	"io/fs"
	"syscall"
)

// The methods of FS on a name in an open directory: each resolves the name
// in the directory's node, wherever that node now is in the tree, and
// otherwise does what its path counterpart does.

// CreateIn implements FS.
func (m *Mem) CreateIn(dir File, name string, perm fs.FileMode) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	n, errno := m.create(r, perm)
	if errno != 0 {
		return nil, pathError("open", full, errno)
	}
	return &memFile{m: m, node: n, name: full, writable: true}, nil
}

// OpenAppendIn implements FS.
func (m *Mem) OpenAppendIn(dir File, name string, perm fs.FileMode) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	n, errno := m.openCreate(r, perm, permW)
	if errno != 0 {
		return nil, pathError("open", full, errno)
	}
	return &memFile{m: m, node: n, name: full, writable: true, appending: true}, nil
}

// OpenDirIn implements FS.
func (m *Mem) OpenDirIn(dir File, name string) (File, error) {
	m.lock()
	defer m.mu.Unlock()
	if name == "." {
		d, ok := dir.(*memFile)
		if !ok || d.m != m || d.closed {
			return nil, pathError("open", name, syscall.EBADF)
		}
		return m.openDir(resolved{p: memPath{kind: lastDot}, chain: []*memNode{d.node}}, d.name)
	}
	r, full := m.atIn(dir, name)
	return m.openDir(r, full)
}

// RenameIn implements FS. A RenameReplace over a directory fails with
// EEXIST, as Rename's does.
func (m *Mem) RenameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error {
	m.lock()
	defer m.mu.Unlock()
	or, oldFull := m.atIn(oldDir, oldname)
	nr, newFull := m.atIn(newDir, newname)
	var errno syscall.Errno
	op := "renameat2"
	switch how {
	case RenameExchange:
		errno = m.exchange(or, nr)
	case RenameNoReplace:
		errno = m.rename(or, nr, true)
	default:
		op = "rename"
		if nn, e := m.lookupAt(nr); e == 0 && nn.isDir() {
			errno = syscall.EEXIST
		} else {
			errno = m.rename(or, nr, false)
		}
	}
	if errno != 0 {
		return linkError(op, oldFull, newFull, errno)
	}
	return nil
}

// TruncateIn implements FS.
func (m *Mem) TruncateIn(dir File, name string, size int64) error {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	if errno := m.truncate(r, size); errno != 0 {
		return pathError("truncate", full, errno)
	}
	return nil
}

// OverwriteIn implements FS.
func (m *Mem) OverwriteIn(dir File, name string, off int64, p []byte) error {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	if errno := m.overwrite(r, off, p); errno != 0 {
		return pathError("pwrite", full, errno)
	}
	return nil
}

// RemoveIn implements FS.
func (m *Mem) RemoveIn(dir File, name string) error {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	if errno := m.remove(r); errno != 0 {
		return pathError("remove", full, errno)
	}
	return nil
}

// MkdirIn implements FS.
func (m *Mem) MkdirIn(dir File, name string, perm fs.FileMode) error {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	d, last, errno := m.newEntry(r, true)
	if errno != 0 {
		return pathError("mkdir", full, errno)
	}
	m.setEntry(d, last, newDir(perm))
	return nil
}

// OpenLockIn implements FS.
func (m *Mem) OpenLockIn(dir File, name string, perm fs.FileMode) (Lock, error) {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	n, errno := m.openCreate(r, perm, permR|permW)
	if errno != 0 {
		return nil, pathError("open", full, errno)
	}
	return &memLock{m: m, node: n, name: full}, nil
}

// MapSharedIn implements SharedMemory.
func (m *Mem) MapSharedIn(dir File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	m.lock()
	defer m.mu.Unlock()
	r, full := m.atIn(dir, name)
	return m.mapShared(r, full, size, perm)
}
