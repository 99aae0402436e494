package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// dirFlag defines the -d flag on fs.
func dirFlag(fs *flag.FlagSet) *string {
	return fs.String("d", "", "the metadata `DIR`ectory (default $SPOOLMETA_DIR, else ./metadata)")
}

// metadataDir returns the directory the command works on.
func metadataDir(e *env, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := e.getenv("SPOOLMETA_DIR"); v != "" {
		return v
	}
	return "metadata"
}

// checkMetadataDir returns an error unless dir holds every state directory.
func checkMetadataDir(dir string) error {
	for _, s := range metastorage.States() {
		fi, err := os.Lstat(filepath.Join(dir, s.String()))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s is not a metadata directory (no %s/ in it)", dir, s)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a metadata directory (%s is not a directory)", dir, s)
		}
	}
	return nil
}

// logger returns the logger of the backends the command opens: errors the
// backend cannot return go to stderr.
func logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelError}))
}

// openReadOnly opens dir for reading: it creates nothing, repairs nothing
// and takes no locks, and refuses a directory that is not a metadata
// directory.
func openReadOnly(e *env, dir string) (*metafs.Backend, error) {
	if err := checkMetadataDir(dir); err != nil {
		return nil, err
	}
	b, err := metafs.NewFactory(dir).WithReadOnly(true).WithLogger(logger(e.stderr)).Open()
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return b, nil
}

// openWritable opens dir for changes. It too refuses a directory that is
// not a metadata directory, so that a mistyped -d creates nothing.
func openWritable(e *env, dir string) (*metafs.Backend, error) {
	if err := checkMetadataDir(dir); err != nil {
		return nil, err
	}
	b, err := metafs.NewFactory(dir).WithLogger(logger(e.stderr)).Open()
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return b, nil
}

// parseState parses a state name, as a usage error listing the valid names.
func parseState(name string) (metastorage.QueueState, error) {
	s, err := metastorage.ParseQueueState(strings.ToLower(name))
	if err != nil {
		return 0, usagef("unknown state %q (valid: %s)", name, stateNames())
	}
	return s, nil
}

// parseStates parses state names; none means every state.
func parseStates(names []string) ([]metastorage.QueueState, error) {
	if len(names) == 0 {
		return metastorage.States(), nil
	}
	var states []metastorage.QueueState
	for _, n := range names {
		s, err := parseState(n)
		if err != nil {
			return nil, err
		}
		states = append(states, s)
	}
	return states, nil
}

func stateNames() string {
	var names []string
	for _, s := range metastorage.States() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ")
}
