//go:build !linux && !darwin

package filesystem

const (
	platformSupported    = false
	platformSyncFS       = false
	platformProbeRenames = false
)
