//go:build !linux

package filesystem

const platformSupported = false
