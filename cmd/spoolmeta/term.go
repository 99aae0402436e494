package main

import (
	"os"
	"strconv"
)

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// termWidth returns the width of stdout in columns: the terminal's width,
// else $COLUMNS, else 80.
func termWidth(f *os.File, terminal bool, getenv func(string) string) int {
	if terminal {
		if w := windowWidth(f); w > 0 {
			return w
		}
	}
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}
