package filesystem

// macOS has no syncfs, and HFS+ lacks RENAME_SWAP: open syncs through a
// vfs.Tracker and probes the file system's renames.
const (
	platformSupported    = true
	platformSyncFS       = false
	platformProbeRenames = true
)
