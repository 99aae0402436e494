package filesystem

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// File system magic numbers, as statfs(2) reports them.
const (
	magicXFS  = 0x58465342
	magicExt4 = 0xef53 // also ext2 and ext3
)

// journalsInOrder reports whether the file system of the directory dir
// journals its metadata in order, so that an fsync of any file or
// directory commits every change of names and times made before its last
// change: XFS, and ext4 or ext3 with a journal. Anything it cannot tell
// counts as not.
func journalsInOrder(dir string) bool {
	var sfs unix.Statfs_t
	if unix.Statfs(dir, &sfs) != nil {
		return false
	}
	switch sfs.Type {
	case magicXFS:
		return true
	case magicExt4:
		return ext4Journaled(dir)
	}
	return false
}

// ext4Journaled reports whether the ext4 file system of dir has a journal:
// the journal's thread that sysfs names under the device is "<none>" on
// one without.
func ext4Journaled(dir string) bool {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return false
	}
	dev, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return false
	}
	task, err := os.ReadFile(filepath.Join("/sys/fs/ext4", filepath.Base(dev), "journal_task"))
	if err != nil {
		return false
	}
	t := strings.TrimSpace(string(task))
	return t != "" && t != "<none>"
}
