//go:build !unix

package filesystem

import "time"

// processCPU returns 0: the figure is measured on Unix only.
func processCPU() time.Duration { return 0 }
