//go:build linux || darwin

package spooltest

const diskBackend = true
