package filesystem

const (
	platformSupported = true
	// platformSyncFS says the OS file system syncs itself whole (syncfs).
	platformSyncFS = true
	// platformProbeRenames says open checks that the file system renames
	// without replacing and exchanges (see probeRenames).
	platformProbeRenames = false
)
