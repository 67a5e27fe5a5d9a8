package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ErrMissingBinary is wrapped by the error a Start function returns when a
// server binary is not installed. Its text is the fix.
var ErrMissingBinary = errors.New("run `make deps` to install it")

// errAddrInUse marks a start that failed because another process took a
// port between freePort choosing it and the server binding it.
var errAddrInUse = errors.New("address already in use")

// findBinary returns the path of name (a path, or a name looked up in PATH),
// else of the first fallback path that is executable.
func findBinary(name string, fallbacks ...string) (string, error) {
	for _, candidate := range append([]string{name}, fallbacks...) {
		if path, err := exec.LookPath(candidate); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH: %w", name, ErrMissingBinary)
}

// FreePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before a server binds it: the servers started here
// retry then, and other callers see the bind fail.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dataDir returns dir, or a new temporary directory when dir is empty, and
// whether the caller owns (and must remove) it.
func dataDir(dir, pattern string) (string, bool, error) {
	if dir != "" {
		return dir, false, os.MkdirAll(dir, 0o755)
	}
	dir, err := os.MkdirTemp("", pattern)
	return dir, true, err
}

// startOnPorts picks a free port for every 0 in ports, builds the server for
// them and starts it. A server that fails to bind a picked port is retried
// with new ones, because free ports can be taken by concurrent test binaries.
func startOnPorts(ctx context.Context, ports []int, build func(ports []int) (*server, error)) (*server, []int, error) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		picked := make([]int, len(ports))
		anyPicked := false
		for i, p := range ports {
			if p == 0 {
				var err error
				if p, err = FreePort(); err != nil {
					return nil, nil, err
				}
				anyPicked = true
			}
			picked[i] = p
		}
		srv, err := build(picked)
		if err != nil {
			return nil, nil, err
		}
		err = srv.start(ctx)
		if err == nil {
			return srv, picked, nil
		}
		if !anyPicked || attempt == attempts || !errors.Is(err, errAddrInUse) {
			return nil, nil, err
		}
	}
}

// server is a server binary run as a child process, which can be stopped
// and started again with the same command line (same ports, same data).
type server struct {
	name    string   // binary name, for messages
	bin     string   // executable path
	args    []string // command line after bin
	dir     string   // working directory
	outPath string   // stdout and stderr of every run, appended
	logs    []string // further log files whose tails explain a failed start
	timeout time.Duration
	ready   func(ctx context.Context) error // nil when the server answers

	mu sync.Mutex
	p  *process // nil when stopped
}

// process is one run of a server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // result of Wait, set before done is closed
}

// start runs the server and waits until ready succeeds, the process exits,
// or s.timeout passes. On failure the error carries the tails of the
// server's output and logs from this run.
func (s *server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		return fmt.Errorf("%s is already running", s.name)
	}

	// Remember where this run's output starts, so a failure shows only it.
	offsets := make(map[string]int64)
	for _, path := range append([]string{s.outPath}, s.logs...) {
		if fi, err := os.Stat(path); err == nil {
			offsets[path] = fi.Size()
		}
	}

	out, err := os.OpenFile(s.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// A file, not a pipe: the child writes to it directly, no copying
	// goroutines, and it outlives the run for diagnosis.
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	out.Close() // the child holds its own descriptor
	if err != nil {
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := waitReady(ctx, p, s.ready); err != nil {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		p.kill()
		tails := s.tails(offsets)
		if exited && strings.Contains(tails, "already in use") {
			err = fmt.Errorf("%w (%w)", err, errAddrInUse)
		}
		return fmt.Errorf("%w\n%s", err, tails)
	}
	s.p = p
	return nil
}

// waitReady polls ready until it succeeds, the process exits or ctx ends.
func waitReady(ctx context.Context, p *process, ready func(context.Context) error) error {
	for {
		probeCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := ready(probeCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before answering: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not answering before the startup timeout: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop kills the server abruptly, as a crash would, and waits for it to
// exit. It reports a server that had already exited on its own, because that
// is a crash the test should hear about. Stopping a stopped server is a
// no-op.
func (s *server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	p := s.p
	s.p = nil
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited on its own: %v", s.name, p.err)
	default:
	}
	return p.kill()
}

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing pid %d: %w", p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

// tails returns the end of the output and log files written since offsets.
func (s *server) tails(offsets map[string]int64) string {
	var b strings.Builder
	for _, path := range append([]string{s.outPath}, s.logs...) {
		if t := tail(path, offsets[path], 4<<10); t != "" {
			fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", path, t)
		}
	}
	if b.Len() == 0 {
		return "(the server wrote no output)"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// tail returns at most limit bytes from the end of path, not before offset.
func tail(path string, offset, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if fi.Size() < offset { // the file was rotated; read the new one
		offset = 0
	}
	offset = max(offset, fi.Size()-limit)
	b, err := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// child is what RedisServer and ClickHouseServer share: a server process
// that can be stopped and started again, and the directory it runs in.
type child struct {
	srv       *server
	dir       string
	removeDir bool // the directory is ours to remove on Close
}

// Dir returns the server's directory: its config, data and logs.
func (c *child) Dir() string { return c.dir }

// Stop kills the server, as a crash would; clients see connection errors
// until Start.
func (c *child) Stop() error {
	if err := c.srv.stop(); err != nil {
		return fmt.Errorf("stopping %s: %w", c.srv.name, err)
	}
	return nil
}

// Start starts a stopped server again on the same ports and data, and waits
// until it answers.
func (c *child) Start(ctx context.Context) error {
	if err := c.srv.start(ctx); err != nil {
		return fmt.Errorf("restarting %s: %w", c.srv.name, err)
	}
	return nil
}

// Close stops the server and removes its directory if the package made it.
func (c *child) Close() error {
	err := c.Stop()
	if c.removeDir {
		if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("removing %s directory: %w", c.srv.name, rmErr)
		}
	}
	return err
}

// running reports whether the server was started and not stopped.
func (s *server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p != nil
}
