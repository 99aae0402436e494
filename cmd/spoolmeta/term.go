package main

import (
	"os"
	"strconv"
)

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
