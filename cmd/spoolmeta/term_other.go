//go:build !(linux || darwin || freebsd || netbsd || openbsd || windows)

package main

import "os"

// isTerminal returns false: without a way to tell, the tool never asks.
func isTerminal(*os.File) bool { return false }

// windowWidth returns 0: the width is unknown on this platform.
func windowWidth(*os.File) int { return 0 }
