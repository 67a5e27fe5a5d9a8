package service

import (
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// EnvPrefix starts the name of every environment variable that sets a flag.
const EnvPrefix = "ANOMALYD_"

// EnvName is the environment variable that sets the flag name:
// "log-level" is ANOMALYD_LOG_LEVEL.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ParseFlags parses args into fs, then sets every flag that args did not set
// from its environment variable (EnvName), read with getenv (os.Getenv in
// production). An empty variable counts as unset. Like fs.Parse with
// flag.ContinueOnError, it writes any error to fs.Output() as well as
// returning it, and returns flag.ErrHelp for -h.
func ParseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		env := EnvName(f.Name)
		v := getenv(env)
		if v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("environment variable %s: invalid value %q for -%s: %w", env, v, f.Name, e)
		}
	})
	if err != nil {
		fmt.Fprintln(fs.Output(), err)
	}
	return err
}

// SetUsage makes -h print a usage line, the service's description (one
// paragraph, already wrapped) and every flag with its environment variable.
func SetUsage(fs *flag.FlagSet, description string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: %s [flags]\n\n%s\n\n", fs.Name(), strings.TrimSpace(description))
		fmt.Fprint(out, "Every flag can also be set by the environment variable shown with it; the\ncommand line wins over the environment, the environment over the default.\n\nFlags:\n")
		// A copy of fs whose usage strings name the variables lets
		// flag.PrintDefaults do the formatting, so -h looks like any Go
		// command's. DefValue is copied because Var would take the current
		// value, which differs from the default after a failed parse.
		cp := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		cp.SetOutput(out)
		fs.VisitAll(func(f *flag.Flag) {
			cp.Var(f.Value, f.Name, fmt.Sprintf("%s (env %s)", f.Usage, EnvName(f.Name)))
			cp.Lookup(f.Name).DefValue = f.DefValue
		})
		cp.PrintDefaults()
	}
}

// AddrList is a flag.Value for a comma-separated list of addresses. Set
// replaces the list, so a flag given twice keeps the last one, as scalar
// flags do.
type AddrList []string

func (l *AddrList) String() string { return strings.Join(*l, ",") }

func (l *AddrList) Set(s string) error {
	*l = nil
	if strings.TrimSpace(s) == "" {
		return nil
	}
	for a := range strings.SplitSeq(s, ",") {
		*l = append(*l, strings.TrimSpace(a))
	}
	return nil
}

// CheckDialAddrs checks addresses to connect to: host:port with a host
// and a numeric port in 1-65535.
func CheckDialAddrs(name string, addrs []string) error {
	if len(addrs) == 0 {
		return fmt.Errorf("-%s: at least one host:port is required", name)
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || !validPort(port, 1) {
			return fmt.Errorf("-%s: %q is not host:port", name, a)
		}
	}
	return nil
}

// checkListenAddr checks an address to listen on: the host may be empty
// (every interface) and the port 0 (any free port).
func checkListenAddr(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || !validPort(port, 0) {
		return fmt.Errorf("-%s: %q is not host:port", name, addr)
	}
	return nil
}

// validPort accepts only decimal digits: a service name like "http" would
// depend on the machine's /etc/services.
func validPort(s string, lowest int) bool {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= lowest && n <= 65535
}
