package filesystem

import (
	"io/fs"
	"syscall"
)

// statCtimeIno returns the change time and inode number that fi holds, or
// zeros.
func statCtimeIno(fi fs.FileInfo) (int64, uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctimespec.Nano(), st.Ino
	}
	return 0, 0
}
