package filesystem

import "github.com/spoolmeta/spoolmeta/filesystem/internal/counters"

// numStripes is the number of lock stripes, and so of files under .locks.
const numStripes = counters.Stripes

// stripeOf returns the stripe of the message whose file name is file.
func stripeOf(file string) int {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(file); i++ {
		h ^= uint32(file[i])
		h *= 16777619
	}
	return int(h % numStripes)
}
