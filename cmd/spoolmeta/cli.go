package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Exit statuses.
const (
	exitOK      = 0 // everything was done
	exitPartial = 1 // some messages were skipped or not found
	exitError   = 2 // usage or I/O error
)

// env is what a command sees of the world, so that tests can replace it.
type env struct {
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	getenv   func(string) string
	now      func() time.Time
	terminal bool // stdout is a terminal
	input    bool // stdin is a terminal, so the user can be asked
	width    int  // the width of stdout in columns
}

// newEnv returns the env of the running process.
func newEnv() *env {
	e := &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		now:    time.Now,
	}
	e.terminal = isTerminal(os.Stdout)
	e.input = isTerminal(os.Stdin)
	e.width = termWidth(os.Stdout, e.terminal, os.Getenv)
	if v := os.Getenv("SPOOLMETA_NOW"); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			e.now = func() time.Time { return t }
		}
	}
	return e
}

// command is one subcommand.
type command struct {
	name     string
	args     string // the synopsis of the arguments
	summary  string
	detail   string // longer help, with examples
	run      func(e *env, fs *flag.FlagSet, args []string) error
	setFlags func(fs *flag.FlagSet) // defines the flags; nil if none
}

// commands lists the subcommands in the order help shows them.
func commands() []*command {
	return []*command{
		statCmd(), lsCmd(), showCmd(),
		holdCmd(), releaseCmd(), requeueCmd(), deleteCmd(), moveCmd(),
		copyCmd(), fsckCmd(), benchCmd(), versionCmd(), helpCmd(),
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is an error in the command line: exit status 2, with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// partialError reports that a command did part of its work: exit status 1.
type partialError struct{ msg string }

func (e *partialError) Error() string { return e.msg }

// errSilentPartial is a partialError whose details were already printed.
var errSilentPartial = &partialError{}

// run runs the command line args and returns the exit status.
func run(args []string, e *env) int {
	global := flag.NewFlagSet("spoolmeta", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	dir := global.String("d", "", "")
	help := global.Bool("h", false, "")
	global.BoolVar(help, "help", false, "")
	showVersion := global.Bool("version", false, "")
	if err := global.Parse(args); err != nil {
		fmt.Fprintf(e.stderr, "spoolmeta: %v\nRun 'spoolmeta help' for usage.\n", err)
		return exitError
	}
	args = global.Args()
	switch {
	case *help && len(args) == 0:
		writeUsage(e.stdout)
		return exitOK
	case *showVersion && len(args) == 0:
		fmt.Fprintf(e.stdout, "spoolmeta %s\n", buildVersion())
		return exitOK
	case *help:
		args = []string{"help", args[0]} // spoolmeta -h ls is spoolmeta help ls
	case *showVersion:
		fmt.Fprintf(e.stderr, "spoolmeta: --version takes no command\nRun 'spoolmeta help' for usage.\n")
		return exitError
	case len(args) == 0:
		writeUsage(e.stderr)
		return exitError
	}
	c := findCommand(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "spoolmeta: unknown command %q\nRun 'spoolmeta help' for usage.\n", args[0])
		return exitError
	}
	if *dir != "" {
		if !takesDir(c) {
			fmt.Fprintf(e.stderr, "spoolmeta: -d does not apply to %s, which works on no metadata directory\nRun 'spoolmeta help %s' for usage.\n", c.name, c.name)
			return exitError
		}
		// A -d before the command is the default of the command's -d.
		e.getenv = withDir(e.getenv, *dir)
	}
	return exitStatus(e, c, runCommand(e, c, args[1:]))
}

// takesDir reports whether c has the -d flag.
func takesDir(c *command) bool {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	if c.setFlags != nil {
		c.setFlags(fs)
	}
	return fs.Lookup("d") != nil
}

// withDir returns a getenv that reports dir as $SPOOLMETA_DIR.
func withDir(getenv func(string) string, dir string) func(string) string {
	return func(k string) string {
		if k == "SPOOLMETA_DIR" {
			return dir
		}
		return getenv(k)
	}
}

// runCommand parses the command's flags, which may come before, between or
// after its arguments, and runs it.
func runCommand(e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.setFlags != nil {
		c.setFlags(fs)
	}
	help := fs.Bool("h", false, "show this help")
	fs.BoolVar(help, "help", false, "show this help")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				*help = true
				break
			}
			return usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if *help {
		writeCommandHelp(e.stdout, c, fs)
		return nil
	}
	return c.run(e, fs, pos)
}

// exitStatus prints err and maps it to an exit status.
func exitStatus(e *env, c *command, err error) int {
	var ue *usageError
	var pe *partialError
	var ie *interruptedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ie):
		return ie.code() // the summary says it
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "spoolmeta %s: %v\nRun 'spoolmeta help %s' for usage.\n", c.name, err, c.name)
		return exitError
	case errors.As(err, &pe):
		if pe.msg != "" {
			fmt.Fprintf(e.stderr, "spoolmeta %s: %s\n", c.name, pe.msg)
		}
		return exitPartial
	default:
		fmt.Fprintf(e.stderr, "spoolmeta %s: %v\n", c.name, err)
		return exitError
	}
}

// writeUsage prints the list of commands.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, "spoolmeta inspects and repairs a spoolmeta metadata directory or database.\n\n")
	fmt.Fprint(w, "Usage:\n\n\tspoolmeta [-d DIR] COMMAND [ARGS]\n\tspoolmeta -h | --help | --version\n\nCommands:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nDIR is the metadata directory, or a database as postgres://USER@HOST/DB?schema=NAME\n")
	fmt.Fprint(w, "(password from PG* variables or ~/.pgpass): -d DIR, else $SPOOLMETA_DIR, else ./metadata.\n")
	fmt.Fprint(w, "Exit status: 0 done, 1 some messages skipped or not found, 2 usage or I/O error.\n")
	fmt.Fprint(w, "Run 'spoolmeta help COMMAND' for the flags and examples of a command.\n")
}

// writeCommandHelp prints the help of one command.
func writeCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: spoolmeta %s", c.name)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintf(w, "\n\n%s.\n", c.summary)
	if c.detail != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.detail))
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "h" && f.Name != "help" {
			names = append(names, f.Name)
		}
	})
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	fmt.Fprint(w, "\nFlags:\n")
	for _, n := range names {
		f := fs.Lookup(n)
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  %s%s%s\n    \t%s", dash, n, arg, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	}
}

// helpCmd is the help command.
func helpCmd() *command {
	return &command{
		name:    "help",
		args:    "[COMMAND]",
		summary: "Show the list of commands, or the help of one command",
		detail: `
Examples:

  spoolmeta help
  spoolmeta help ls
  spoolmeta ls -h`,
		run: func(e *env, _ *flag.FlagSet, args []string) error {
			switch len(args) {
			case 0:
				writeUsage(e.stdout)
				return nil
			case 1:
				c := findCommand(args[0])
				if c == nil {
					return usagef("unknown command %q", args[0])
				}
				fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
				if c.setFlags != nil {
					c.setFlags(fs)
				}
				writeCommandHelp(e.stdout, c, fs)
				return nil
			}
			return usagef("help takes at most one command")
		},
	}
}
