package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
)

// Exit codes of Main.
const (
	ExitOK    = 0 // clean shutdown, or -h
	ExitError = 1 // the service failed
	ExitUsage = 2 // bad flag, environment variable or argument
)

// Service is what Main needs to run one anomalyd service.
type Service struct {
	// Name is the command's name, e.g. "baseline". It heads -h and is the
	// "service" attribute of every log record.
	Name string
	// Description is printed by -h: one paragraph, wrapped at 80 columns.
	Description string
	// RegisterFlags registers the service's flags, typically by calling
	// RegisterFlags of the config groups it uses. Main adds LogConfig's.
	RegisterFlags func(fs *flag.FlagSet)
	// Validate, if set, checks the parsed flags; an error names the flag.
	Validate func() error
	// Run runs the service until ctx is done (SIGTERM or SIGINT), then
	// drains, flushes, commits and returns nil. An error, or a return
	// before ctx is done, is a failure; an error that wraps
	// context.Canceled after ctx is done counts as a clean shutdown.
	Run func(ctx context.Context, logger *slog.Logger) error
}

// Main runs s with the command-line arguments args (without the program
// name), reading flag fallbacks with getenv and writing usage, errors and
// logs to stderr, and returns the process's exit code:
//
//	func main() { os.Exit(service.Main(context.Background(), svc, os.Args[1:], os.Getenv, os.Stderr)) }
func Main(ctx context.Context, s Service, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet(s.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var logCfg LogConfig
	logCfg.RegisterFlags(fs)
	if s.RegisterFlags != nil {
		s.RegisterFlags(fs)
	}
	SetUsage(fs, s.Description)
	if err := ParseFlags(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage // ParseFlags has printed the error
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q; every setting is a flag (see -h)\n", s.Name, fs.Arg(0))
		return ExitUsage
	}
	err := logCfg.Validate()
	if err == nil && s.Validate != nil {
		err = s.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
		return ExitUsage
	}
	logger := logCfg.Logger(stderr).With("service", s.Name)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// After the first signal, stop restores the default action, so that a
	// second one kills a shutdown that hangs.
	announce := func() { logger.Info("shutting down", "cause", context.Cause(ctx).Error()) }
	announced := make(chan struct{})
	unwatch := context.AfterFunc(ctx, func() {
		defer close(announced)
		stop()
		announce()
	})

	logger.Info("starting")
	err = s.Run(ctx, logger)
	switch {
	case !unwatch():
		<-announced // log in order, and leave no goroutine behind
	case ctx.Err() != nil:
		// Run saw ctx done before the context package started the
		// announcement (it closes Done before it runs AfterFuncs), and
		// unwatch stopped it: announce here.
		announce()
	}
	stopped := ctx.Err() != nil
	switch {
	case stopped && (err == nil || errors.Is(err, context.Canceled)):
		logger.Info("stopped")
		return ExitOK
	case err == nil:
		logger.Error("service returned before shutdown was requested")
	default:
		logger.Error("service failed", "err", err)
	}
	return ExitError
}
